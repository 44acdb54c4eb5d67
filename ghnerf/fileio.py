"""Atomic file writes and checked image reads.

Every writer here writes to a temporary file in the destination folder and
renames it into place, so a killed process never leaves a half-written file
under the final name.
"""

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ghnerf.base.errors import DataReadError


def umask_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the process's umask (0o666 minus the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success, with the umask's mode (the
    temporary file is created 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj) -> None:
    write_bytes(path, json.dumps(obj, indent=1).encode())


def write_npy(path: str | Path, array, allow_pickle: bool = False) -> None:
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array, allow_pickle=allow_pickle)


def write_npz(path: str | Path, **arrays) -> None:
    with atomic_path(path, ".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


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
    truncated_jpeg = path.suffix.lower() in (".jpg", ".jpeg") and not data.tobytes().rstrip(b"\0").endswith(b"\xff\xd9")
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


def image_complete(path: str | Path) -> bool:
    """The file ends as a whole JPEG (EOI marker) or PNG (IEND chunk) does: a truncated file does not.

    Reads the last bytes only (trailing zero padding is ignored, as :func:`read_image` ignores it); other
    formats count as complete.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        return True
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read().rstrip(b"\0")
        if not tail and size > 4096:
            fh.seek(0)
            tail = fh.read().rstrip(b"\0")
    return tail.endswith(b"\xff\xd9") if suffix in (".jpg", ".jpeg") else tail.endswith(_PNG_END)


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
