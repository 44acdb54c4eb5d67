"""The robust triangulation of one frame's joints from a few views' keypoints, by one pose network or several, with
the joints no two cameras agree on optionally lifted from one view: what the student's joint hypotheses
(:mod:`ghnerf.student.joint_hypotheses`) and the triangulated-teacher rival (:mod:`ghnerf.eval.triangulated_teacher`)
both compute."""

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.cameras import Camera
from ghnerf.base.joint_lifting import lift_missing_joints
from ghnerf.base.multiview import consistency_report
from ghnerf.base.tolerances import REL_THRESHOLD


def triangulate_views(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                      rel_threshold: float = REL_THRESHOLD, lift: bool = False,
                      more_keypoints: Float[np.ndarray, "C 25 3"] | None = None) -> Float[np.ndarray, "25 3"]:
    """Robust triangulation (:func:`ghnerf.base.multiview.consistency_report`) of C views' keypoints.

    Args:
        cameras: C pinhole cameras of the keypoints' pixels.
        keypoints: (C, 25, 3) x, y, confidence per view; confidence <= 0 or a non-finite x/y: missing.
        rel_threshold: the outlier tolerance (share of each view's keypoint box diagonal).
        lift: also place the joints no two cameras agree on from the most confident view that detected them
            (:func:`ghnerf.base.joint_lifting.lift_missing_joints`).
        more_keypoints: a second pose network's keypoints of the same C views, each an observation of its own: a
            joint stands where the observations of at least two different cameras agree, whichever network gave
            them (``consistency_report``'s ``view_cameras``).
    Returns:
        (25, 3) world points, NaN where no two cameras agree (with ``lift``: where no view detected the joint or no
        triangulated joint is connected to it).
    """
    observed = np.asarray(keypoints, np.float64)
    if len(cameras) == 0:
        return np.full((NUM_JOINTS, 3), np.nan)
    view_cameras = np.arange(len(cameras))
    if more_keypoints is not None:
        if np.shape(more_keypoints) != observed.shape:
            raise ValueError(f"more_keypoints {np.shape(more_keypoints)} must match keypoints {observed.shape}")
        observed = np.concatenate([observed, np.asarray(more_keypoints, np.float64)])
        cameras, view_cameras = list(cameras) * 2, np.concatenate([view_cameras, view_cameras])
    joints = consistency_report(cameras, observed, rel_threshold=rel_threshold, view_cameras=view_cameras).joints3d
    return lift_missing_joints(cameras, observed, joints) if lift else joints
