"""Rays and samples along them: ENeRF's depth-guided sampling and the uniform baseline.

Depth-guided: each ray gets ``samples_per_ray`` points uniform (in the level's
sampling space) inside its pixel's regressed interval [near, far] (ENeRF
``sample_along_depth``). Uniform: ``n`` points across the scene's near/far, as a
plain NeRF would (used by the speed benchmark).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ghnerf.student.cost_volume import from_space, to_space
from ghnerf.student.geometry import backproject


@dataclass(frozen=True, eq=False)
class RaySamples:
    """Samples of R rays.

    Attributes:
        points: (R, S, 3) world positions, metres.
        depths: (R, S) camera-z depth of each sample.
        volume_coords: (R, S, 3) normalised (u, v, d) in [0, 1] for sampling the level's feature volume.
        directions: (R, 3) unit world directions of the rays.
    """

    points: Tensor
    depths: Tensor
    volume_coords: Tensor
    directions: Tensor


def lookup(maps: Float[Tensor, "C h w"], uv: Float[Tensor, "R 2"], width: int, height: int) -> Float[Tensor, "R C"]:
    """Bilinear lookup of per-pixel maps at render-resolution pixels (normalised with align_corners)."""
    grid = torch.stack([uv[:, 0] / max(width - 1, 1), uv[:, 1] / max(height - 1, 1)], dim=-1) * 2 - 1
    out = F.grid_sample(maps[None], grid[None, :, None, :], mode="bilinear", align_corners=True)
    return out[0, :, :, 0].T


def depth_guided_samples(uv: Float[Tensor, "R 2"], render_size: tuple[int, int], K: Float[Tensor, "3 3"],
                         w2c: Float[Tensor, "4 4"], near: Float[Tensor, "h w"], far: Float[Tensor, "h w"],
                         plane_lo: Float[Tensor, "h w"], plane_hi: Float[Tensor, "h w"], samples: int,
                         inverse: bool) -> RaySamples:
    """Samples inside each ray's regressed depth interval.

    Args:
        uv: ray pixels at render resolution; ``render_size`` = (H, W) of that resolution; ``K`` its intrinsics.
        near, far: the level's per-pixel depth interval (metres), on the volume grid.
        plane_lo, plane_hi: the level's first and last plane in the sampling space (d = 0 and 1 in the volume).
        samples: points per ray (1 = the interval's midpoint).
    """
    H, W = render_size
    maps = torch.stack([near, far, plane_lo, plane_hi])
    n, f, lo, hi = lookup(maps, uv, W, H).unbind(-1)
    a, b = to_space(n, inverse), to_space(f, inverse)
    t = torch.full((1,), 0.5, device=uv.device) if samples == 1 else torch.linspace(0, 1, samples, device=uv.device)
    s = a[:, None] + (b - a)[:, None] * t[None]
    depths = from_space(s, inverse)
    points = backproject(uv[:, None, :].expand(-1, samples, 2), depths, K, w2c)
    d_norm = torch.where((hi - lo).abs()[:, None] > 1e-9, (s - lo[:, None]) / (hi - lo)[:, None], torch.zeros_like(s))
    u = (uv[:, 0] / max(W - 1, 1))[:, None].expand(-1, samples)
    v = (uv[:, 1] / max(H - 1, 1))[:, None].expand(-1, samples)
    centre = backproject(uv, torch.ones(len(uv), device=uv.device), K, w2c)
    origin = -w2c[:3, :3].T @ w2c[:3, 3]
    dirs = F.normalize(centre - origin, dim=-1)
    return RaySamples(points, depths, torch.stack([u, v, d_norm], dim=-1), dirs)


def uniform_samples(uv: Float[Tensor, "R 2"], K: Float[Tensor, "3 3"], w2c: Float[Tensor, "4 4"], near: float,
                    far: float, samples: int) -> Float[Tensor, "R S 3"]:
    """``samples`` points per ray uniform in depth over the scene's [near, far] (plain NeRF sampling)."""
    t = torch.linspace(0, 1, samples, device=uv.device)
    depths = (near + (far - near) * t)[None].expand(len(uv), samples)
    return backproject(uv[:, None, :].expand(-1, samples, 2), depths, K, w2c)
