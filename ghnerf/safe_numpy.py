"""Loading user ``.npy`` / ``.npz`` files without ever running code from them.

A ZJU-MoCap ``annots.npy`` is a pickled dict (``np.save`` of a 0-d object
array), and RenderPeople's ``refit_smpl_2nd.npz`` holds one too, so the real
files need unpickling. Letting numpy unpickle them (``np.load`` with pickles
allowed) would run whatever they hold: a crafted file whose object has a
``__reduce__`` calling ``os.system`` runs its command on load. Every user
``.npy`` / ``.npz`` is read here instead: arrays of plain dtypes go through numpy with ``allow_pickle=False``;
object arrays through an unpickler that resolves only the few globals a real
``np.save`` of dicts, lists, strings, numbers and arrays writes (numpy's array
and scalar reconstructors, ``numpy.ndarray``, ``numpy.dtype``, ``complex``,
``set``) and refuses every other one, before anything is called, with an
:class:`~ghnerf.base.errors.UnsafeFileError` naming the file and the refused class.
"""

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from ghnerf.base.errors import DataReadError, UnsafeFileError

# (module, name) -> object. numpy >= 2 pickles under ``numpy._core``, numpy 1.x under ``numpy.core``;
# Python 2 pickles name ``__builtin__``. Everything else is refused.
_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
_MODULE_ALIASES = {"numpy.core.multiarray": "numpy._core.multiarray", "numpy.core.numeric": "numpy._core.numeric",
                   "__builtin__": "builtins"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fp, path: Path):
        super().__init__(fp, encoding="latin1")  # latin1: what numpy needs for Python 2 era array pickles
        self._path = path

    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((_MODULE_ALIASES.get(module, module), name))
        if found is None:
            raise UnsafeFileError(self._path, f"{module}.{name}")
        return found

    def persistent_load(self, pid):
        raise UnsafeFileError(self._path, f"persistent object {pid!r}")


def _read_array(fp, path: Path) -> np.ndarray:
    """One ``.npy`` stream: plain arrays through numpy (no pickle), object arrays through the restricted unpickler."""
    start = fp.tell()
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(fp)
    else:
        _, _, dtype = np.lib.format.read_array_header_2_0(fp)
    if not dtype.hasobject:
        fp.seek(start)
        return np.lib.format.read_array(fp, allow_pickle=False)
    array = _RestrictedUnpickler(fp, path).load()
    if not isinstance(array, np.ndarray):
        raise DataReadError(path, f"not a numpy array file: the pickle holds a {type(array).__name__}")
    return array


def load_npy(path: str | Path, what: str = "array file") -> np.ndarray:
    """Read a ``.npy`` file safely.

    Args:
        path: the file.
        what: what the file is, for messages ("annots.npy", "vertex file").
    Returns:
        the array (a 0-d object array for a pickled dict: use ``.item()``).
    Raises:
        UnsafeFileError: the file pickles a class a dataset file never holds (nothing was run).
        DataReadError: missing, truncated or not a ``.npy`` file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            return _read_array(fp, path)
    except DataReadError:
        raise
    except FileNotFoundError as exc:
        raise DataReadError(path, f"{what} is missing") from exc
    except Exception as exc:  # noqa: BLE001 - numpy and pickle raise many types for a damaged file
        raise DataReadError(path, f"{what} is not a readable .npy file ({type(exc).__name__}: {exc})") from exc


def load_npz(path: str | Path, what: str = "array archive") -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` file safely (same rules as :func:`load_npy`); ``{name: array}``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            out = {}
            for member in zf.namelist():
                name = member[:-4] if member.endswith(".npy") else member
                out[name] = _read_array(io.BytesIO(zf.read(member)), path)
            return out
    except DataReadError:
        raise
    except FileNotFoundError as exc:
        raise DataReadError(path, f"{what} is missing") from exc
    except Exception as exc:  # noqa: BLE001
        raise DataReadError(path, f"{what} is not a readable .npz file ({type(exc).__name__}: {exc})") from exc
