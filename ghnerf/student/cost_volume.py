"""ENeRF's cost volume as pure functions: depth planes, plane-sweep warping, variance, depth regression.

Each level works in a *sampling space*: disparity (1 / depth) when the level is
``inverse_depth``, depth otherwise; planes are uniform in it. Sources:
zju3dv/ENeRF@5a084e9 lib/networks/enerf/utils.py (``get_depth_values``, ``homo_warp``,
``build_feature_volume``, ``depth_regression``, ``build_rays``); pinned against the
original's outputs by ``tests/ghnerf/student/test_enerf_golden.py``.
"""

import functools
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
    """``planes`` values per pixel in the sampling space, uniform from ``near`` to ``far`` (depths, metres).

    Plane 0 is at ``near``: in disparity space the values decrease with the plane index."""
    t = torch.linspace(0.0, 1.0, planes, device=near.device).view(-1, 1, 1)
    a, b = to_space(near, inverse), to_space(far, inverse)
    return a + t * (b - a)


def variance_volume(src_feats: Float[Tensor, "V C hs ws"], src_K: Float[Tensor, "V 3 3"],
                    src_w2c: Float[Tensor, "V 4 4"], feature_scale: float, tgt_K: Float[Tensor, "3 3"],
                    tgt_w2c: Float[Tensor, "4 4"], volume_scale: float,
                    depths: Float[Tensor, "D h w"], pixels: Float[Tensor, "h w 2"] | None = None
                    ) -> Float[Tensor, "C D h w"]:
    """Plane sweep: warp every source feature map onto the target's depth planes; variance over views.

    Args:
        src_feats: source feature maps at ``feature_scale`` x the input resolution.
        src_K, tgt_K: intrinsics at the input resolution, scaled here to the feature map and to the volume grid
            (ENeRF ``get_proj_mats``: ``im_feat_scale`` and ``volume_scale``).
        depths: camera-z depth of each plane at each volume pixel; the grid is ``depths``' (h, w).
        pixels: where those (h, w) pixels lie on the volume grid, (x, y) each (default: the whole grid,
            ``pixel_grid(h, w)``; a part of it: :func:`ghnerf.student.volume_window.window_pixels`).
    """
    D, h, w = depths.shape
    hs, ws = src_feats.shape[-2:]
    uv = (pixel_grid(h, w, depths.device) if pixels is None else pixels).expand(D, h, w, 2)
    pts = backproject(uv, depths, scale_K(tgt_K, volume_scale), tgt_w2c).reshape(-1, 3)
    src_uv, _ = project(pts, scale_K(src_K, feature_scale), src_w2c)
    grid = torch.stack([src_uv[..., 0] / (ws - 1), src_uv[..., 1] / (hs - 1)], dim=-1) * 2 - 1
    warped = F.grid_sample(src_feats, grid.view(len(src_feats), D, h * w, 2), mode="bilinear",
                           padding_mode="zeros", align_corners=True)  # V C D hw
    return _ViewVariance.apply(warped).view(-1, D, h, w)


class _ViewVariance(torch.autograd.Function):
    """``mean(x**2, 0) - mean(x, 0)**2`` (ENeRF's variance over the views, biased) with a one-pass backward,
    ``(x - mean) * grad * 2 / V``: autograd's own backward of that formula makes six passes over the (V, C, D, hw)
    warped features. Same values to float rounding, gradients too.

    With 2 views (ENeRF's ZJU-MoCap setting) the variance is ``((a - b) / 2)**2``: three passes over the features
    instead of nine, and without the cancellation of the difference of means."""

    @staticmethod
    def forward(ctx, x: Float[Tensor, "V ..."]) -> Float[Tensor, "..."]:
        views = x.unbind(0)  # sums of slices: no (V, ...) temporaries
        if len(views) == 2:
            half_diff = torch.sub(*views).mul_(0.5)  # a - mean = (a - b) / 2, b - mean = -(a - b) / 2
            ctx.save_for_backward(half_diff)
            return half_diff.square()
        mean = functools.reduce(torch.add, views) / len(views)  # reduce: no pass adding the 0 that sum() starts at
        ctx.save_for_backward(x, mean)
        return functools.reduce(torch.add, (v * v for v in views)) / len(views) - mean * mean

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        if len(ctx.saved_tensors) == 1:  # 2 views: (x - mean) * grad * 2 / 2 = +-half_diff * grad
            g = ctx.saved_tensors[0] * grad
            return torch.stack([g, -g])
        x, mean = ctx.saved_tensors
        return (x - mean).mul_(grad * (2.0 / len(x)))


@dataclass(frozen=True, eq=False)
class DepthEstimate:
    """Per-pixel depth distribution of one level, on its volume grid, in its sampling space.

    Attributes:
        mean: (h, w) expected value.
        std: (h, w) standard deviation.
        first, last: (h, w) the first and the last plane (the level's range; ``first`` is the near one).
        inverse: the sampling space is disparity.
    """

    mean: Tensor
    std: Tensor
    first: Tensor
    last: Tensor
    inverse: bool

    def maps(self) -> Float[Tensor, "4 h w"]:
        """mean, std, first, last stacked (to resample them together)."""
        return torch.stack([self.mean, self.std, self.first, self.last])


def depth_regression(logits: Float[Tensor, "D h w"], planes: Float[Tensor, "D h w"], inverse: bool) -> DepthEstimate:
    """Softmax over planes -> mean and standard deviation in the sampling space (ENeRF ``depth_regression``)."""
    prob = F.softmax(logits, dim=0)
    mean = (prob * planes).sum(0)
    std = ((prob * (planes - mean) ** 2).sum(0)).clamp_min(1e-10).sqrt()
    return DepthEstimate(mean, std, planes[0], planes[-1], inverse)


def depth_interval(mean: Tensor, std: Tensor, first: Tensor, last: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
    """The interval mean -/+ std kept inside the level's planes, in the sampling space: (near, far).

    ENeRF clamps after resampling mean, std and the plane range to the grid that uses them, so call this on
    values already looked up at their destination (``build_rays``, ``get_depth_values``)."""
    if inverse:  # disparity: near is the larger value
        return torch.minimum(mean + std, first), torch.maximum(mean - std, last)
    return torch.maximum(mean - std, first), torch.minimum(mean + std, last)


def plane_coordinate(s: Tensor, first: Tensor, last: Tensor, inverse: bool) -> Tensor:
    """Where sampling-space values ``s`` lie between the first (0) and the last (1) plane: the depth coordinate of
    the feature volume (ENeRF ``sample_along_depth``, measured from plane 0). ``first``/``last`` broadcast."""
    sign = -1.0 if inverse else 1.0
    return sign * (s - first) / (sign * (last - first)).clamp_min(1e-6)


def next_level_range(prev: DepthEstimate, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The next level's per-pixel depth range (near, far) in metres on its (h, w) grid: the previous level's
    mean, std and plane range resampled (bilinear, corners aligned), then clamped (ENeRF ``get_depth_values``)."""
    m = F.interpolate(prev.maps()[None], size=size, mode="bilinear", align_corners=True)[0]
    near, far = depth_interval(*m, prev.inverse)
    return from_space(near, prev.inverse), from_space(far, prev.inverse)
