"""Triangulated joint hypotheses as an explicit input of the heatmap head (ours, not the paper's; parameter-free).

The pose network's keypoints of the K source views, triangulated robustly (:func:`ghnerf.base.multiview.
consistency_report`: RANSAC over view pairs, refit on the inliers), are the geometric rival every multi-view
student has to beat (:mod:`ghnerf.eval.triangulated_teacher`). Rather than make the student rediscover that
answer from heatmaps, it gets it: per target ray and joint, a Gaussian of the pixel distance between the ray and
the projection of the triangulated joint into the target view,

    T_j(ray) = exp( -|| uv - P_t(X_j) ||^2 / (2 sigma^2) ),   0 where X_j is missing or behind the camera,

which is the heatmap the triangulated teacher would draw in the target view. Teacher-free (no pose network at test
time), the keypoints are the peaks of the student's own source heatmap head (:func:`source_keypoints`). The head reads it next to the ray
evidence (:mod:`ghnerf.student.ray_evidence`, the view-mean heatmaps along the ray) and its image features, starts
as a calibrated copy of it and learns where to correct it.
"""

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.cameras import Camera
from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.base.tolerances import REL_THRESHOLD
from ghnerf.base.view_triangulation import triangulate_views
from ghnerf.student.geometry import project


def triangulate_source_keypoints(keypoints: Float[np.ndarray, "V 25 3"], src_K: Float[Tensor, "V 3 3"],
                                 src_w2c: Float[Tensor, "V 4 4"], lift: bool = False,
                                 rel_threshold: float = REL_THRESHOLD,
                                 more_keypoints: Float[np.ndarray, "V 25 3"] | None = None) -> Float[Tensor, "25 3"]:
    """Robust triangulation of the source views' keypoints (undistorted pixels at ``src_K``'s resolution).

    Args:
        rel_threshold: the outlier tolerance (:func:`ghnerf.base.multiview.consistency_report`).
        lift: also place the joints no 2 views agree on from one view
            (:func:`ghnerf.base.joint_lifting.lift_missing_joints`).
        more_keypoints: a second pose network's keypoints of the same V views (the teacher's, next to the
            student's own), each an observation of its own (:func:`ghnerf.base.view_triangulation.
            triangulate_views`).
    Returns:
        (25, 3) world points on ``src_K``'s device, NaN where no 2 views agree (with ``lift``: where no view
        detected the joint or no triangulated joint is connected to it).
    """
    K = src_K.detach().double().cpu().numpy()
    w2c = src_w2c.detach().double().cpu().numpy()
    if len(K) < 2:
        return torch.full((NUM_JOINTS, 3), float("nan"), device=src_K.device)
    cameras = [Camera(K=k, R=m[:3, :3], T=m[:3, 3]) for k, m in zip(K, w2c)]
    joints = triangulate_views(cameras, keypoints, rel_threshold, lift, more_keypoints)
    return torch.as_tensor(joints, dtype=src_K.dtype, device=src_K.device)


def source_keypoints(heatmaps: Float[Tensor, "V J h w"], stride: int = 2) -> Float[np.ndarray, "V J 3"]:
    """Keypoints (x, y, peak value; source-image pixels) of heatmaps at ``stride`` pixels per cell, decoded as the
    teachers' are (:meth:`ghnerf.base.keypoint_codec.HeatmapCodec.decode`: sub-cell peak, absent below its
    threshold or on the border): the student's source heatmap head (at half resolution) as its own pose network."""
    codec = HeatmapCodec(stride=stride)
    return np.stack([codec.decode(m) for m in heatmaps.detach().float().cpu().numpy()])


def hypothesis_heatmaps(uv: Float[Tensor, "R 2"], K: Float[Tensor, "3 3"], w2c: Float[Tensor, "4 4"],
                        joints3d: Float[Tensor, "J 3"], sigma: float) -> Float[Tensor, "R J"]:
    """Per ray, per joint: the Gaussian of the pixel distance to the joint's projection.

    Args:
        uv: ray pixels in the target image whose intrinsics are ``K`` (any resolution).
        K, w2c: target intrinsics at ``uv``'s resolution and world-to-camera.
        joints3d: world joints, NaN rows missing.
        sigma: Gaussian width in pixels of ``K``'s resolution.
    Returns:
        values in [0, 1]; 0 for a missing joint or one behind the camera.
    """
    present = torch.isfinite(joints3d).all(dim=-1)
    pix, z = project(torch.nan_to_num(joints3d), K[None], w2c[None])
    present = present & (z[0] > 0)
    d2 = ((uv[:, None, :] - pix[0][None]) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * sigma ** 2)) * present[None]
