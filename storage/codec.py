"""Compact array encodings for target rows.

* ``heatmap``: uint16 quantised against the per-target maximum (``value = q / 65535 * scale``),
  stored as two byte planes (all high bytes, then all low bytes) so zstd sees the smooth
  high plane apart from the noisy low one. Gaussian heatmaps of 256 px images shrink ~60x
  versus float32 and decoded peaks move < 0.001 px. (uint8 shrinks further but moves
  peaks by up to 0.09 px; we keep keypoint accuracy. Figures: benchmarks/distill_overhead.py.)
* ``cse``: float16 (unit embeddings in [-1, 1]; 1e-3 precision).
* ``keypoints``: float32 (25, 3).
"""

import numpy as np

from ghnerf.base.kinds import TargetKind

ENCODINGS = ("uint16-planar", "float16", "float32")
ENCODING_OF_KIND = {"heatmap": "uint16-planar", "cse": "float16", "keypoints": "float32"}  # what encode_array writes
QMAX = 65535


def encode_array(kind: str, array: np.ndarray) -> tuple[str, bytes, float, list[int]]:
    """(encoding, bytes, scale, shape) for a target array of ``kind``."""
    arr = np.asarray(array)
    if kind == TargetKind.HEATMAP:
        scale = float(np.max(arr)) if arr.size else 0.0
        q = (np.zeros(arr.shape, np.uint16) if scale <= 0
             else np.round(np.clip(arr / scale, 0, 1) * QMAX).astype(np.uint16))
        planes = q.astype(">u2").view(np.uint8).reshape(-1, 2).T  # row 0: high bytes, row 1: low bytes
        return "uint16-planar", np.ascontiguousarray(planes).tobytes(), scale, list(arr.shape)
    if kind == TargetKind.CSE:
        return "float16", arr.astype(np.float16).tobytes(), 1.0, list(arr.shape)
    return "float32", arr.astype(np.float32).tobytes(), 1.0, list(arr.shape)


def decode_array(encoding: str, data: bytes, scale: float, shape: list[int]) -> np.ndarray:
    """Inverse of :func:`encode_array` (float32 result)."""
    if encoding == "uint16-planar":
        planes = np.frombuffer(data, np.uint8).reshape(2, -1)
        q = (planes[0].astype(np.uint16) << 8) | planes[1]
        return q.reshape(shape).astype(np.float32) * np.float32(scale / QMAX)
    if encoding == "float16":
        return np.frombuffer(data, np.float16).reshape(shape).astype(np.float32)
    if encoding == "float32":
        return np.frombuffer(data, np.float32).reshape(shape).copy()
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def pack_mask(mask: np.ndarray | None) -> bytes | None:
    return None if mask is None else np.packbits(mask.astype(bool), axis=None).tobytes()


def unpack_mask(data: bytes | None, shape: tuple[int, int]) -> np.ndarray | None:
    if data is None:
        return None
    n = shape[0] * shape[1]
    return np.unpackbits(np.frombuffer(data, np.uint8), count=n).reshape(shape).astype(bool)
