"""Multi-view joint evidence along target rays (ours, not the paper's; parameter-free).

A pose network's heatmaps of the source views say, per view, where each joint
projects. A joint lies *inside* the body, so the surface point a target ray hits
projects off the joint in the other views and the view-pooled features at the
surface cannot see it (averaging the teacher's source heatmaps at the true surface
points gives PCK 0.72 on the synthetic held-out views). The ray that passes through
the joint, though, crosses its 3D position at some depth, where every source view's
heatmap peaks. So for each ray: ``samples`` points uniform in depth across the
target's near/far, each projected into every source view, the source heatmaps read
there and averaged over views (a view that missed or swapped a joint costs a share,
not the answer), and the maximum along the ray taken per joint:

    E_j(ray) = max_t  mean_v  H_v,j( P_v( o + t d ) )

This is a 2D heatmap of the target view made from the source views alone (the
multi-view bootstrapping of Simon et al., CVPR 2017, evaluated ray by ray). The
student's heatmap head reads it next to its other features
(``StudentConfig.ray_evidence_samples``).
"""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ghnerf.student.geometry import ray_depth_grids


def ray_joint_evidence(uv: Float[Tensor, "R 2"], K: Float[Tensor, "3 3"], w2c: Float[Tensor, "4 4"],
                       near_far: Float[Tensor, "2"], src_heatmaps: Float[Tensor, "V J h w"],
                       src_K: Float[Tensor, "V 3 3"], src_w2c: Float[Tensor, "V 4 4"], image_size: tuple[int, int],
                       samples: int, agreement: bool = False) -> Float[Tensor, "R J"] | Float[Tensor, "R 2 J"]:
    """Per ray, per joint: the maximum over depth of the view-mean source heatmap at the ray's points; with
    ``agreement``, stacked with the maximum over depth of the view-*minimum* there (R, 2, J): high only where
    every view sees the joint at the same point.

    Args:
        uv: ray pixels in the target image whose intrinsics are ``K`` (any resolution).
        K, w2c: target intrinsics (at ``uv``'s resolution) and world-to-camera.
        near_far: depth range the points span (metres, camera z).
        src_heatmaps: per source view, joint heatmaps covering that view's whole image (any resolution).
        src_K, src_w2c: source intrinsics at ``image_size`` and world-to-camera.
        image_size: (H, W) of the source images ``src_K`` belongs to.
        samples: points per ray (>= 2).
    Returns:
        evidence in the heatmaps' value range; 0 where no point of the ray projects into any source view.
    """
    if samples < 2:
        raise ValueError(f"ray evidence needs at least 2 samples per ray, not {samples}")
    R = len(uv)
    depths = torch.linspace(float(near_far[0]), float(near_far[1]), samples, device=uv.device)
    grid = ray_depth_grids(uv, depths, K, w2c, src_K, src_w2c, image_size)  # behind a camera: outside, reads 0
    # per channel, contiguous (V J N): the sum over views and the maximum along each ray read memory in order; the
    # mean's division after the maximum (rounding is monotone, so the same numbers) on R x J values, not R x S x J
    values = F.grid_sample(src_heatmaps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0]
    evidence = (values.sum(dim=0).view(-1, R, samples).amax(dim=-1) / len(values)).T
    if not agreement:
        return evidence
    return torch.stack([evidence, values.amin(dim=0).view(-1, R, samples).amax(dim=-1).T], dim=1)
