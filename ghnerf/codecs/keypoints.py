"""BODY_25 keypoints <-> Gaussian heatmaps, the one codec for teachers, training and evaluation.

Coordinate space: keypoints are (x, y) in *undistorted image pixels*, pixel
centres at integer coordinates. A heatmap of stride ``s`` has ``ceil(H / s) x
ceil(W / s)`` cells; cell ``(i, j)`` is centred on image point
``(j * s + (s - 1) / 2, i * s + (s - 1) / 2)``. Keypoint order: BODY_25
(:mod:`ghnerf.base.body25`). ``sigma`` is in image pixels (OpenPose trains with 7).

Decoding takes the arg-max cell and refines it with a parabola through the log
values of its neighbours, which is exact for a Gaussian peak.
"""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.errors import ConfigError

OPENPOSE_SIGMA_PX = 7.0


@dataclass(frozen=True)
class HeatmapCodec:
    """Gaussian heatmap encoding.

    Attributes:
        stride: image pixels per heatmap cell.
        sigma: Gaussian standard deviation in image pixels.
    """

    stride: int = 2
    sigma: float = OPENPOSE_SIGMA_PX

    def __post_init__(self):
        if self.stride < 1 or self.sigma <= 0:
            raise ConfigError(f"heatmap stride must be >= 1 and sigma > 0 (got {self.stride}, {self.sigma})")

    def heatmap_size(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.stride), -(-width // self.stride)

    def to_cells(self, xy: np.ndarray) -> np.ndarray:
        return (xy - (self.stride - 1) / 2) / self.stride

    def to_pixels(self, cells: np.ndarray) -> np.ndarray:
        return cells * self.stride + (self.stride - 1) / 2

    def encode(self, keypoints: Float[np.ndarray, "K 3"], height: int, width: int,
               amplitude: Float[np.ndarray, "K"] | None = None) -> tuple[
            Float[np.ndarray, "K h w"], Bool[np.ndarray, "K"]]:
        """Heatmaps of keypoints (x, y, confidence); confidence <= 0 or non-finite xy = missing (all-zero map).

        Args:
            keypoints: (K, 3) x, y in image pixels and confidence.
            height, width: image size in pixels.
            amplitude: (K,) peak value per joint in [0, 1] (default 1: ground truth).
        Returns:
            heatmaps (K, h, w) float32 in [0, 1] with peak 1 at each present joint, and the missing flags (K,).
        """
        h, w = self.heatmap_size(height, width)
        kp = np.asarray(keypoints, dtype=np.float64)
        missing = ~(np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] > 0))
        out = np.zeros((len(kp), h, w), np.float32)
        s = self.sigma / self.stride
        ys, xs = np.arange(h), np.arange(w)
        for k in np.flatnonzero(~missing):
            cx, cy = self.to_cells(kp[k, :2])
            gx = np.exp(-((xs - cx) ** 2) / (2 * s * s))
            gy = np.exp(-((ys - cy) ** 2) / (2 * s * s))
            out[k] = np.outer(gy, gx) * (1.0 if amplitude is None else float(np.clip(amplitude[k], 0, 1)))
        return out, missing

    def decode(self, heatmaps: Float[np.ndarray, "K h w"], threshold: float = 0.05) -> Float[np.ndarray, "K 3"]:
        """Peak of each heatmap as (x, y, score) in image pixels; score 0 and NaN xy when below ``threshold``."""
        hm = np.asarray(heatmaps, dtype=np.float64)
        k, h, w = hm.shape
        out = np.full((k, 3), np.nan)
        flat = hm.reshape(k, -1)
        idx = flat.argmax(axis=1)
        for j in range(k):
            peak = flat[j, idx[j]]
            if not np.isfinite(peak) or peak < threshold:
                out[j] = (np.nan, np.nan, 0.0)
                continue
            y, x = divmod(int(idx[j]), w)
            dx = _parabola_offset(hm[j, y, x - 1] if x > 0 else 0, peak, hm[j, y, x + 1] if x < w - 1 else 0)
            dy = _parabola_offset(hm[j, y - 1, x] if y > 0 else 0, peak, hm[j, y + 1, x] if y < h - 1 else 0)
            out[j, :2] = self.to_pixels(np.array([x + dx, y + dy]))
            out[j, 2] = peak
        return out


def _parabola_offset(left: float, centre: float, right: float) -> float:
    """Sub-cell offset of the peak of a parabola through the logs of three samples (exact for a Gaussian)."""
    eps = 1e-12
    if left <= eps or right <= eps:
        return 0.0
    ll, lc, lr = np.log(left), np.log(centre), np.log(right)
    denom = ll - 2 * lc + lr
    if denom >= -eps:
        return 0.0
    return float(np.clip(0.5 * (ll - lr) / denom, -0.5, 0.5))


def empty_keypoints() -> Float[np.ndarray, "25 3"]:
    """All joints missing: NaN xy, confidence 0."""
    out = np.full((NUM_JOINTS, 3), np.nan)
    out[:, 2] = 0.0
    return out
