"""BODY_25 keypoints <-> Gaussian heatmaps, the one codec for teachers, training and evaluation.

Coordinate space: keypoints are (x, y) in *undistorted image pixels*, pixel
centres at integer coordinates. A heatmap of stride ``s`` has ``ceil(H / s) x
ceil(W / s)`` cells; cell ``(i, j)`` is centred on image point
``(j * s + (s - 1) / 2, i * s + (s - 1) / 2)``. Keypoint order: BODY_25
(:mod:`ghnerf.base.body25`). ``sigma`` is in image pixels (OpenPose trains with 7).

Decoding takes the arg-max cell and refines it to sub-cell precision with a
quadratic fit to the log values of its 3 x 3 neighbourhood (:func:`refine_peak`,
DARK), which is exact for a Gaussian peak of any covariance. A joint is *absent*
(NaN xy, confidence exactly 0) when its peak is below the threshold or lies on
the heatmap's border: a maximum there cannot be told from a peak outside the
image, so it is not clamped to the edge.
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
        """Peak of each heatmap as (x, y, score) in image pixels, refined by :func:`refine_peak`; NaN xy and
        score 0 when the peak is below ``threshold`` or on the heatmap's border."""
        hm = np.asarray(heatmaps, dtype=np.float64)
        out = np.full((len(hm), 3), np.nan)
        out[:, 2] = 0.0
        for j, m in enumerate(hm):
            y, x = np.unravel_index(int(np.argmax(m)), m.shape)
            peak = m[y, x]
            offset = refine_peak(m, y, x) if np.isfinite(peak) and peak >= threshold else None
            if offset is not None:
                out[j, :2] = self.to_pixels(np.array([x, y]) + offset)
                out[j, 2] = peak
        return out


LOG_FLOOR = 1e-12


def refine_peak(heatmap: Float[np.ndarray, "h w"], y: int, x: int) -> Float[np.ndarray, "2"] | None:
    """Sub-cell offset (dx, dy) in [-0.5, 0.5] of the maximum near cell (y, x), or None when (y, x) is on the
    map's border (the maximum may lie outside the map).

    DARK (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation", CVPR 2020,
    eq. 2-5): a Newton step ``-H^-1 g`` on the log heatmap with gradient ``g`` and Hessian ``H`` from central
    differences over the 3 x 3 neighbourhood, exact for a Gaussian. Where the log is not concave there (a
    flat or zero neighbour), each axis gets its own parabola through the three raw values instead.
    """
    h, w = heatmap.shape
    if not (0 < y < h - 1 and 0 < x < w - 1):
        return None
    patch = np.asarray(heatmap[y - 1:y + 2, x - 1:x + 2], np.float64)
    if patch.min() > LOG_FLOOR:
        lg = np.log(patch)
        g = np.array([lg[1, 2] - lg[1, 0], lg[2, 1] - lg[0, 1]]) / 2
        dxx, dyy = lg[1, 2] - 2 * lg[1, 1] + lg[1, 0], lg[2, 1] - 2 * lg[1, 1] + lg[0, 1]
        dxy = (lg[2, 2] - lg[2, 0] - lg[0, 2] + lg[0, 0]) / 4
        if dxx < 0 and dxx * dyy - dxy * dxy > 0:
            return np.clip(-np.linalg.solve(np.array([[dxx, dxy], [dxy, dyy]]), g), -0.5, 0.5)
    return np.array([parabola_offset(*patch[1]), parabola_offset(*patch[:, 1])])


def parabola_offset(left: float, centre: float, right: float) -> float:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through three samples at -1, 0, 1 (0 if not concave)."""
    denom = left - 2 * centre + right
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def empty_keypoints() -> Float[np.ndarray, "25 3"]:
    """All joints missing: NaN xy, confidence 0."""
    out = np.full((NUM_JOINTS, 3), np.nan)
    out[:, 2] = 0.0
    return out
