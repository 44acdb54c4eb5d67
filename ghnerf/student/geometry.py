"""Camera geometry on tensors: scaled intrinsics, back-projection, projection into source views.

Conventions as :mod:`ghnerf.base.cameras`: ``x_cam = R X + T`` (metres), OpenCV axes;
depth = camera z. Sampling grids follow ``grid_sample(align_corners=True)`` as ENeRF.
"""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor


def scale_K(K: Float[Tensor, "*b 3 3"], scale: float) -> Float[Tensor, "*b 3 3"]:
    """Intrinsics of the same camera at ``scale`` x the resolution (ENeRF's ``ixt[:2] *= ratio``)."""
    out = K.clone()
    out[..., :2, :] = out[..., :2, :] * scale
    return out


def pixel_grid(h: int, w: int, device=None) -> Float[Tensor, "h w 2"]:
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def backproject(uv: Float[Tensor, "*p 2"], depth: Float[Tensor, "*p"], K: Float[Tensor, "3 3"],
                w2c: Float[Tensor, "4 4"]) -> Float[Tensor, "*p 3"]:
    """World points at camera-z ``depth`` behind pixels ``uv``."""
    x = (uv[..., 0] - K[0, 2]) / K[0, 0]
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    cam = torch.stack([x * depth, y * depth, depth], dim=-1)
    R, T = w2c[:3, :3], w2c[:3, 3]
    return (cam - T) @ R  # R^T (cam - T) for row vectors


def project(points: Float[Tensor, "N 3"], K: Float[Tensor, "V 3 3"], w2c: Float[Tensor, "V 4 4"]) -> tuple[
        Float[Tensor, "V N 2"], Float[Tensor, "V N"]]:
    """Pixels and camera-z depths of world points in every view."""
    cam = torch.einsum("vij,nj->vni", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
    z = cam[..., 2]
    pix = torch.einsum("vij,vnj->vni", K, cam)
    uv = pix[..., :2] / z.clamp_min(1e-6)[..., None]
    return uv, z


def ray_depth_grids(uv: Float[Tensor, "R 2"], depths: Float[Tensor, "S"], K: Float[Tensor, "3 3"],
                    w2c: Float[Tensor, "4 4"], src_K: Float[Tensor, "V 3 3"], src_w2c: Float[Tensor, "V 4 4"],
                    image_size: tuple[int, int], outside: float = -3.0) -> Float[Tensor, "V R*S 1 2"]:
    """``grid_sample`` coordinates (corners aligned, [-1, 1] over a source image of ``image_size``) of the points
    at camera-z ``depths`` behind the target pixels ``uv``, in every source view: :func:`backproject` then
    :func:`project`, folded into one 3x3 map per view. A target pixel's ray ``r = K^-1 [u, v, 1]`` at depth z is
    ``z r`` in the target camera, so its source view's normalised homogeneous pixel is ``z (P_v r) + p_v``
    with ``P_v = A K_v R_rel`` and ``p_v = A K_v t_rel`` (``A``: pixels to grid coordinates): one multiply-add
    per point instead of a world point and a projection. Points behind a source camera get ``outside`` (beyond
    the image: zero padding reads 0 there)."""
    H, W = image_size
    to_grid = src_K.new_tensor([[2.0 / (W - 1), 0.0, -1.0], [0.0, 2.0 / (H - 1), -1.0], [0.0, 0.0, 1.0]])
    R_t, T_t = w2c[:3, :3], w2c[:3, 3]
    rel_R = src_w2c[:, :3, :3] @ R_t.T  # (V 3 3): target camera -> source camera
    rel_T = src_w2c[:, :3, 3] - rel_R @ T_t
    P = to_grid @ src_K @ rel_R
    p = to_grid @ (src_K @ rel_T[..., None])[..., 0].T  # (3 V)
    rays = torch.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], torch.ones_like(uv[:, 0])], -1)
    dirs = torch.einsum("vij,rj->ivr", P, rays)  # (3 V R): one contiguous plane per component
    x, y, z = (torch.addcmul(p[c][:, None, None], dirs[c][..., None], depths) for c in range(3))  # (V R S) each
    z_safe = z.clamp_min(1e-6)
    grid = torch.stack([x / z_safe, y / z_safe], dim=-1)  # (V R S 2), written once in grid_sample's layout
    return torch.where((z > 0)[..., None], grid, grid.new_tensor(outside)).view(len(src_K), -1, 1, 2)


def sample_maps(maps: Float[Tensor, "V C h w"], uv: Float[Tensor, "V N 2"], width: int, height: int,
                padding: str = "zeros") -> Float[Tensor, "V N C"]:
    """Bilinear samples of per-view maps at pixel coordinates of a ``width`` x ``height`` image (corners aligned;
    outside the image: zeros, or the nearest border value with ``padding="border"``). The result is a transposed
    view of the (V, C, N) samples ``grid_sample`` writes."""
    grid = torch.stack([uv[..., 0] / (width - 1), uv[..., 1] / (height - 1)], dim=-1) * 2 - 1
    out = F.grid_sample(maps, grid[:, :, None, :], mode="bilinear", padding_mode=padding, align_corners=True)
    return out[..., 0].permute(0, 2, 1)


def camera_centres(w2c: Float[Tensor, "V 4 4"]) -> Float[Tensor, "V 3"]:
    return -torch.einsum("vji,vj->vi", w2c[:, :3, :3], w2c[:, :3, 3])
