"""ENeRF's cost volume as pure functions: depth planes, plane-sweep warping, variance, depth regression.

Each level works in a *sampling space*: disparity (1 / depth) when the level is
``inverse_depth``, depth otherwise; planes are uniform in it. Sources:
zju3dv/ENeRF lib/networks/enerf/utils.py (``get_depth_values``, ``homo_warp``,
``build_feature_volume``, ``depth_regression``).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ghnerf.student.geometry import backproject, pixel_grid, project, scale_K


def to_space(depth: Tensor, inverse: bool) -> Tensor:
    return 1.0 / depth.clamp_min(1e-6) if inverse else depth


def from_space(s: Tensor, inverse: bool) -> Tensor:
    return 1.0 / s.clamp_min(1e-6) if inverse else s


def plane_values(near: Float[Tensor, "h w"], far: Float[Tensor, "h w"], planes: int, inverse: bool) -> Float[
        Tensor, "D h w"]:
    """``planes`` values per pixel, uniform in the sampling space from ``near`` to ``far`` (depths, metres)."""
    t = torch.linspace(0.0, 1.0, planes, device=near.device).view(-1, 1, 1)
    a, b = to_space(near, inverse), to_space(far, inverse)
    return a + t * (b - a)


def variance_volume(src_feats: Float[Tensor, "V C hs ws"], src_K: Float[Tensor, "V 3 3"],
                    src_w2c: Float[Tensor, "V 4 4"], image_size: tuple[int, int], tgt_K: Float[Tensor, "3 3"],
                    tgt_w2c: Float[Tensor, "4 4"], depths: Float[Tensor, "D h w"]) -> Float[Tensor, "C D h w"]:
    """Plane sweep: warp every source feature map onto the target's depth planes; variance over views.

    Args:
        src_feats: source features at any resolution (sampled through normalised coordinates).
        src_K: full-resolution source intrinsics; ``image_size`` = (H, W) of the input images.
        tgt_K: full-resolution target intrinsics; the volume grid is ``depths``' (h, w).
        depths: camera-z depth of each plane at each volume pixel.
    """
    H, W = image_size
    D, h, w = depths.shape
    Kv = scale_K(tgt_K, w / W)
    uv = pixel_grid(h, w, depths.device).expand(D, h, w, 2)
    pts = backproject(uv, depths, Kv, tgt_w2c).reshape(-1, 3)
    src_uv, _ = project(pts, src_K, src_w2c)
    grid = torch.stack([src_uv[..., 0] / (W - 1), src_uv[..., 1] / (H - 1)], dim=-1) * 2 - 1
    warped = F.grid_sample(src_feats, grid.view(len(src_feats), D, h * w, 2), mode="bilinear",
                           padding_mode="zeros", align_corners=True)  # V C D hw
    mean = warped.mean(dim=0)
    var = (warped**2).mean(dim=0) - mean**2
    return var.view(-1, D, h, w)


@dataclass(frozen=True, eq=False)
class DepthEstimate:
    """Per-pixel depth distribution of one level.

    Attributes:
        mean: (h, w) expected value in the sampling space.
        std: (h, w) standard deviation in the sampling space.
        near, far: (h, w) the depth interval (metres) mean +- std, clamped to the level's planes.
    """

    mean: Tensor
    std: Tensor
    near: Tensor
    far: Tensor


def depth_regression(logits: Float[Tensor, "D h w"], planes: Float[Tensor, "D h w"], inverse: bool) -> DepthEstimate:
    """Softmax over planes -> mean and std in the sampling space -> depth interval for rays and the next level."""
    prob = F.softmax(logits, dim=0)
    mean = (prob * planes).sum(0)
    std = ((prob * (planes - mean) ** 2).sum(0)).clamp_min(1e-12).sqrt()
    lo, hi = planes.amin(0), planes.amax(0)
    a = torch.maximum(mean - std, lo)
    b = torch.minimum(mean + std, hi)
    d1, d2 = from_space(a, inverse), from_space(b, inverse)
    return DepthEstimate(mean, std, torch.minimum(d1, d2), torch.maximum(d1, d2))


def depth_from_estimate(est: DepthEstimate, inverse: bool) -> Tensor:
    return from_space(est.mean, inverse)
