"""Multi-view fused pose targets: a pose teacher's per-view keypoints made consistent across views.

A pose teacher labels each view of a frame on its own, so its mistakes (a wrist on
the wrong side, a swapped leg, a missed foot) differ from view to view. With
calibrated cameras the views must agree on one 3D skeleton: every joint is
triangulated robustly from the views that agree (:func:`ghnerf.base.multiview.consistency_report`,
RANSAC over view pairs) and reprojected into every view, including views where the
teacher missed or misplaced it. This is multi-view bootstrapping (Simon et al.,
"Hand Keypoint Detection in Single Images using Multiview Bootstrapping", CVPR 2017),
the way a multi-view student can end up better than its single-view teacher.

A joint is kept only when at least ``min_inliers`` views agree on it; otherwise it
is missing in every view of the frame (and excluded from the heatmap loss).
Keypoints are in undistorted pixels (pinhole cameras), as the teachers produce them.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import ConfigError
from ghnerf.base.multiview import consistency_report


@dataclass(frozen=True)
class FusionConfig:
    """How teacher keypoints are fused (one source of defaults).

    Attributes:
        min_inliers: views that must agree on a joint (within their tolerance) for it to be kept.
        rel_threshold: a view's agreement tolerance as a share of its keypoint box diagonal
            (:func:`ghnerf.base.multiview.consistency_report`).
    """

    min_inliers: int = 3
    rel_threshold: float = 0.05

    def __post_init__(self):
        if self.min_inliers < 2:
            raise ConfigError(f"min_inliers must be >= 2 (a 3D point needs two views), got {self.min_inliers}")


@dataclass(frozen=True, eq=False)
class FusedKeypoints:
    """Fused keypoints of one frame.

    Attributes:
        keypoints: (C, 25, 3) reprojected x, y (undistorted pixels) and confidence 1; NaN and 0 where dropped.
        joints3d: (25, 3) the triangulated joints (metres), NaN where dropped.
        inliers: (25,) views that agreed on each joint.
    """

    keypoints: Float[np.ndarray, "C 25 3"]
    joints3d: Float[np.ndarray, "25 3"]
    inliers: np.ndarray


def fuse_keypoints(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                   cfg: FusionConfig | None = None) -> FusedKeypoints:
    """Triangulate each joint from the views that agree and reproject it into every view.

    Args:
        cameras: C pinhole cameras of the undistorted images.
        keypoints: (C, 25, 3) the teacher's x, y, confidence per view (confidence <= 0 or NaN: missing).
        cfg: fusion settings.
    Returns:
        The :class:`FusedKeypoints`.
    Raises:
        ConfigError: cameras and keypoints do not match (from the consistency report).
    """
    cfg = cfg or FusionConfig()
    rep = consistency_report(cameras, keypoints, rel_threshold=cfg.rel_threshold)
    inliers = (np.isfinite(rep.reprojection_error) & ~rep.outlier).sum(axis=0)
    keep = np.isfinite(rep.joints3d).all(axis=1) & (inliers >= cfg.min_inliers)
    out = np.full((len(cameras), rep.joints3d.shape[0], 3), np.nan)
    out[..., 2] = 0.0
    joints3d = np.where(keep[:, None], rep.joints3d, np.nan)
    if keep.any():
        for c, cam in enumerate(cameras):
            in_front = cam.to_camera(joints3d[keep])[:, 2] > 0
            idx = np.flatnonzero(keep)[in_front]
            out[c, idx, :2] = cam.project(joints3d[idx], distort=False)
            out[c, idx, 2] = 1.0
    return FusedKeypoints(out, joints3d, inliers)
