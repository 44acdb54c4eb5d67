"""Rays and samples along them: ENeRF's depth-guided sampling and the uniform baseline.

Depth-guided: each ray gets ``samples_per_ray`` points uniform (in the level's
sampling space) inside its pixel's interval mean -/+ std, clamped to the level's
planes (ENeRF ``build_rays`` + ``sample_along_depth``). Uniform: ``n`` points across
the scene's near/far, as a plain NeRF would (used by the speed benchmark).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ghnerf.student.cost_volume import DepthEstimate, depth_interval, from_space, plane_coordinate
from ghnerf.student.geometry import backproject


@dataclass(frozen=True, eq=False)
class RaySamples:
    """Samples of R rays.

    Attributes:
        points: (R, S, 3) world positions, metres.
        values: (R, S) sample positions in the level's sampling space (disparity or depth).
        depths: (R, S) camera-z depth of each sample.
        volume_coords: (R, S, 3) normalised (u, v, d) in [0, 1] for sampling the level's feature volume.
    """

    points: Tensor
    values: Tensor
    depths: Tensor
    volume_coords: Tensor


def lookup(maps: Float[Tensor, "C h w"], uv: Float[Tensor, "R 2"], width: int, height: int) -> Float[Tensor, "R C"]:
    """Bilinear lookup of per-pixel maps at pixels of a ``width`` x ``height`` image spanning the same field of view
    (corners aligned: ENeRF's ``F.interpolate(..., align_corners=True)`` to that size, then indexing)."""
    grid = torch.stack([uv[:, 0] / max(width - 1, 1), uv[:, 1] / max(height - 1, 1)], dim=-1) * 2 - 1
    out = F.grid_sample(maps[None], grid[None, :, None, :], mode="bilinear", align_corners=True)
    return out[0, :, :, 0].T


def depth_guided_samples(uv: Float[Tensor, "R 2"], render_size: tuple[int, int], K: Float[Tensor, "3 3"],
                         w2c: Float[Tensor, "4 4"], est: DepthEstimate, samples: int) -> RaySamples:
    """Samples inside each ray's interval of the level's depth estimate.

    Args:
        uv: ray pixels at render resolution; ``render_size`` = (H, W) of that resolution; ``K`` its intrinsics.
        est: the level's depth distribution on its volume grid (resampled to the rays, then clamped).
        samples: points per ray (1 = the interval's midpoint).
    """
    H, W = render_size
    mean, std, first, last = lookup(est.maps(), uv, W, H).unbind(-1)
    a, b = depth_interval(mean, std, first, last, est.inverse)
    t = torch.full((1,), 0.5, device=uv.device) if samples == 1 else torch.linspace(0, 1, samples, device=uv.device)
    s = a[:, None] + (b - a)[:, None] * t[None]
    depths = from_space(s, est.inverse)
    points = backproject(uv[:, None, :].expand(-1, samples, 2), depths, K, w2c)
    d_norm = plane_coordinate(s, first[:, None], last[:, None], est.inverse)
    u = (uv[:, 0] / max(W - 1, 1))[:, None].expand(-1, samples)
    v = (uv[:, 1] / max(H - 1, 1))[:, None].expand(-1, samples)
    return RaySamples(points, s, depths, torch.stack([u, v, d_norm], dim=-1))


def uniform_samples(uv: Float[Tensor, "R 2"], K: Float[Tensor, "3 3"], w2c: Float[Tensor, "4 4"], near: float,
                    far: float, samples: int) -> Float[Tensor, "R S 3"]:
    """``samples`` points per ray uniform in depth over the scene's [near, far] (plain NeRF sampling)."""
    t = torch.linspace(0, 1, samples, device=uv.device)
    depths = (near + (far - near) * t)[None].expand(len(uv), samples)
    return backproject(uv[:, None, :].expand(-1, samples, 2), depths, K, w2c)
