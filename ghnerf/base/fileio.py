"""Atomic file writes and checked image reads.

Every writer here writes to a temporary file in the destination folder and
renames it into place, so a killed process never leaves a half-written file
under the final name.
"""

import errno
import hashlib
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ghnerf.base.errors import DataReadError, GHNeRFError


class OutputWriteError(GHNeRFError):
    """An output file cannot be written (read-only folder, disk full, file size limit); names the path and cause.
    The temporary file is removed and whatever was at the path before is left as it was."""


WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def write_error(path: str | Path, exc: OSError) -> OSError | OutputWriteError:
    """``exc`` as one line naming ``path`` when it is a cause the user can fix (else ``exc`` itself)."""
    if exc.errno not in WRITE_ERRNOS:
        return exc
    cause = "file size limit reached (ulimit -f)" if exc.errno == errno.EFBIG else os.strerror(exc.errno)
    return OutputWriteError(f"{path}: cannot write ({cause}); nothing was left half-written there: free space, "
                            "make the folder writable or choose another output")


def umask_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the process's umask (0o666 minus the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Raises:
        OutputWriteError: the folder is read-only, the disk is full or the file size limit is reached (the
            temporary file is removed; the file at ``path``, if any, is untouched).

    The file gets the umask's mode (the temporary file is created 0600).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj) -> None:
    write_bytes(path, json.dumps(obj, indent=1).encode())


def write_npy(path: str | Path, array, allow_pickle: bool = False) -> None:
    buffer = io.BytesIO()  # numpy's file writer reports a short write without an errno
    np.save(buffer, array, allow_pickle=allow_pickle)
    write_bytes(path, buffer.getvalue())


def write_npz(path: str | Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an RGB (H, W, 3) or single-channel image; format from the suffix (.jpg, .png; uint16 PNG kept)."""
    path = Path(path)
    arr = image[..., ::-1] if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(arr), params)
    if not ok:
        raise DataReadError(path, "could not encode the image for writing")
    write_bytes(path, buf.tobytes())


def read_image(path: str | Path, what: str = "image", grayscale: bool = False,
               keep_depth: bool = False) -> np.ndarray:
    """Read an image file, raising :class:`DataReadError` naming the file when it is missing or corrupt.

    Args:
        path: the file.
        what: what the file is, for the message ("image", "mask", "depth map").
        grayscale: return (H, W) (first channel of a colour file).
        keep_depth: keep 16-bit values (depth maps).
    Returns:
        (H, W, 3) RGB uint8, or (H, W) for ``grayscale``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataReadError(path, f"{what} file is missing; restore it or regenerate the dataset")
    flags = cv2.IMREAD_UNCHANGED if (grayscale or keep_depth) else cv2.IMREAD_COLOR
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    head = data[:8].tobytes()
    truncated_jpeg = head.startswith(_JPEG_START) and not data.tobytes().rstrip(b"\0").endswith(b"\xff\xd9")
    if img is None or truncated_jpeg:
        raise DataReadError(path, f"{what} file is not a readable image (corrupt or truncated); "
                                  "replace it with a valid file")
    if grayscale:
        return img[..., 0] if img.ndim == 3 else img
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., ::-1].copy() if img.shape[2] == 3 else img[..., 2::-1].copy()


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) from an image header, raising :class:`DataReadError` naming the file."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except FileNotFoundError as exc:
        raise DataReadError(path, "image file is missing; restore it or regenerate the dataset") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        raise DataReadError(path, f"image file is not a readable image ({exc})") from exc


_PNG_END = b"IEND\xaeB`\x82"
_PNG_START = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"


def image_complete(path: str | Path) -> bool:
    """The file ends as a whole JPEG (EOI marker) or PNG (IEND chunk) does: a truncated file does not.

    The format is the file's own (its first bytes), not its name's: a PNG saved under a ``.jpg`` name is
    judged as a PNG. Reads the first and last bytes only (trailing zero padding is ignored, as
    :func:`read_image` ignores it); other formats count as complete.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    kind = "png" if head.startswith(_PNG_START) else "jpeg" if head.startswith(_JPEG_START) else None
    if kind is None:
        return True
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read().rstrip(b"\0")
        if not tail and size > 4096:
            fh.seek(0)
            tail = fh.read().rstrip(b"\0")
    return tail.endswith(b"\xff\xd9") if kind == "jpeg" else tail.endswith(_PNG_END)


def check_image_file(path: str | Path, what: str = "image") -> tuple[tuple[int, int] | None, str | None]:
    """Header-only check of an image file: ``((H, W), None)``, or ``(None, problem)`` when it is missing,
    unreadable or truncated. No pixel is decoded (fast enough for every view of a large dataset)."""
    try:
        size = image_size(path)
    except DataReadError as exc:
        return None, exc.problem.replace("image file", f"{what} file")
    try:
        complete = image_complete(path)
    except OSError as exc:
        return None, f"{what} file cannot be read ({exc})"
    if not complete:
        return None, f"{what} file is truncated (its end is missing); replace it with a valid file"
    return size, None


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
