"""Multi-view consistency of a pose teacher's labels, summarised per shard.

For every frame, the teacher's 2D keypoints from all calibrated views are
triangulated (robustly, :func:`ghnerf.base.multiview.consistency_report`); the
reprojection error per joint and view shows where the teacher disagrees with the
other views, and left/right swaps (a typical failure in back views) are flagged.
This makes noisy teacher labels visible before the student trains on them.
"""

import numpy as np

from ghnerf.base.body25 import BODY25_NAMES
from ghnerf.base.multiview import consistency_report


def shard_consistency(per_frame: list) -> dict:
    """Summary over the frames of one shard.

    Args:
        per_frame: list of (frame, cameras, keypoints (C, 25, 3), camera names) for frames with >= 2 views.
    Returns:
        JSON-able dict: frames, views, median_error_px, outlier_rate, outlier_views (count of flagged
        frame/camera pairs), flagged (their "frame_id/camera" keys), swap_suspects, per_joint_median_px.
    """
    errors, outliers, flagged, swaps = [], [], [], []
    per_joint = [[] for _ in BODY25_NAMES]
    views = 0
    for frame, cameras, keypoints, names in per_frame:
        rep = consistency_report(cameras, keypoints)
        views += len(cameras)
        err = rep.reprojection_error
        present = np.isfinite(err)
        errors.extend(err[present].tolist())
        outliers.extend(rep.outlier[present].tolist())
        for j in range(len(BODY25_NAMES)):
            col = err[:, j]
            per_joint[j].extend(col[np.isfinite(col)].tolist())
        flagged.extend(f"{frame.frame_id}/{names[c]}" for c in np.flatnonzero(_as_mask(rep.flagged_views, len(names))))
        swaps.extend(f"{frame.frame_id}/{names[c]}" for c in np.flatnonzero(rep.swap_suspects))
    return {
        "frames": len(per_frame),
        "views": views,
        "median_error_px": float(np.median(errors)) if errors else None,
        "outlier_rate": float(np.mean(outliers)) if outliers else None,
        "outlier_views": len(flagged),
        "flagged": flagged,
        "swap_suspects": swaps,
        "per_joint_median_px": {n: (float(np.median(v)) if v else None) for n, v in zip(BODY25_NAMES, per_joint)},
    }


def _as_mask(flagged, n: int) -> np.ndarray:
    arr = np.asarray(flagged)
    if arr.dtype == bool and arr.shape == (n,):
        return arr
    mask = np.zeros(n, dtype=bool)
    mask[arr.astype(int)] = True
    return mask
