"""Joints a triangulation left missing, lifted from one view at a neighbour's depth (parameter-free).

Robust triangulation (:func:`ghnerf.base.multiview.consistency_report`) needs two views that agree on a joint. With
two source views (as ENeRF tests humans) that fails for about one joint in twelve the pose network did see: one
view missed it or the two disagree. Counted as missing, such a joint scores nothing. Lifted, it usually lands
within the PCK radius: the most confident view's detection is placed on its camera ray at the camera depth of
the nearest joint along the skeleton (:data:`ghnerf.base.body25.BODY25_LIMBS`) that was triangulated. A joint
sits within a limb's length of its neighbour, and a view near the source camera sees that depth error
foreshortened (student benchmark, 128 held-out views, MediaPipe's keypoints of 2 source views: PCK 0.774
triangulated robustly, 0.824 with the missing joints lifted; with 3 views 0.826 and 0.828).
"""

from collections import deque
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import BODY25_LIMBS, NUM_JOINTS
from ghnerf.base.cameras import Camera

_NEIGHBOURS: dict[int, tuple[int, ...]] = {
    j: tuple(sorted({b for a, b in BODY25_LIMBS if a == j} | {a for a, b in BODY25_LIMBS if b == j}))
    for j in range(NUM_JOINTS)}


def nearest_present_joint(joint: int, present: Sequence[bool]) -> int | None:
    """The joint nearest to ``joint`` along the skeleton (fewest limbs; on a tie the one a breadth-first search over
    each joint's neighbours in index order reaches first) that is ``present``, or None when none is connected."""
    seen, queue = {joint}, deque([joint])
    while queue:
        for n in _NEIGHBOURS[queue.popleft()]:
            if n not in seen:
                if present[n]:
                    return n
                seen.add(n)
                queue.append(n)
    return None


def lift_missing_joints(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                        joints3d: Float[np.ndarray, "25 3"]) -> Float[np.ndarray, "25 3"]:
    """``joints3d`` with each missing joint (NaN row) that some view detected placed on that view's ray.

    Args:
        cameras: C pinhole cameras of the undistorted images.
        keypoints: (C, 25, 3) x, y, confidence per view; confidence <= 0 or a non-finite x/y: not detected.
        joints3d: (25, 3) triangulated world joints, NaN rows missing.
    Returns:
        (25, 3): the triangulated rows as they were; a missing joint from the view that detected it with the
        highest confidence, at the camera depth (z) of :func:`nearest_present_joint` in that camera; still NaN
        when no view detected it, no triangulated joint is connected to it, or that joint is behind the camera.
    """
    kp = np.asarray(keypoints, np.float64)
    out = np.array(joints3d, np.float64, copy=True)
    present = np.isfinite(out).all(axis=1)
    detected = np.isfinite(kp[..., :2]).all(-1) & (np.nan_to_num(kp[..., 2]) > 0)
    for j in np.flatnonzero(~present & detected.any(axis=0)):
        near = nearest_present_joint(int(j), present)
        if near is None:
            continue
        v = int(np.argmax(np.where(detected[:, j], kp[:, j, 2], -np.inf)))
        cam = cameras[v]
        depth = float(cam.to_camera(out[near][None])[0, 2])
        if depth <= 0:
            continue
        ray = np.linalg.solve(np.asarray(cam.K, np.float64), np.array([kp[v, j, 0], kp[v, j, 1], 1.0]))
        out[j] = (ray / ray[2] * depth - cam.T) @ cam.R  # R^T (X_cam - T)
    return out
