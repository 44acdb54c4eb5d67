"""Per-view geometry derived from a frame: near/far depth range and the projected body box.

As ENeRF (lib/datasets/zjumocap/enerf.py ``read_tar``): the vertex bounding box
padded by 0.1 m, its 8 corners taken to camera coordinates, ``near = max(min z, 0.1)``,
``far = max z``; the bound mask is the convex hull of the projected corners.
"""

import itertools
from pathlib import Path

import cv2
import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import DataReadError
from ghnerf.base.safe_numpy import load_npy
from ghnerf.data.records import MultiViewFrame

BOX_PADDING_M = 0.1
MIN_NEAR_M = 0.1


def box_corners(frame: MultiViewFrame, padding: float = BOX_PADDING_M) -> Float[np.ndarray, "8 3"]:
    if frame.bounds is None:
        raise DataReadError(frame.vertices_path or frame.views[0].image_path,
                            f"{frame.subject} frame {frame.frame_id}: no body vertices to bound the subject "
                            "(need new_vertices/ or vertices/ <id>.npy)")
    lo, hi = frame.bounds[0] - padding, frame.bounds[1] + padding
    return np.array([[x, y, z] for x, y, z in itertools.product(*zip(lo, hi))])


def near_far(frame: MultiViewFrame, camera: Camera) -> tuple[float, float]:
    """Depth range (metres along camera z) that contains the subject in this view."""
    z = camera.to_camera(box_corners(frame))[:, 2]
    return max(float(z.min()), MIN_NEAR_M), float(z.max())


def bound_mask(frame: MultiViewFrame, camera: Camera) -> np.ndarray:
    """(H, W) bool: pixels inside the projection of the padded body box (undistorted pixels)."""
    uv = camera.project(box_corners(frame), distort=False)
    hull = cv2.convexHull(np.round(uv).astype(np.int32))
    mask = np.zeros((camera.height, camera.width), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


MIN_FOCAL_PX = 1e-3


def intrinsics_problem(K: np.ndarray) -> str | None:
    """What makes a 3x3 intrinsic matrix unusable (singular, focal lengths not positive), or None."""
    if not (K[0, 0] > MIN_FOCAL_PX and K[1, 1] > MIN_FOCAL_PX):
        return f"K has focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g}; both must be positive (pixels)"
    if abs(np.linalg.det(K)) < MIN_FOCAL_PX ** 2 or not np.allclose(K[2], [0, 0, 1], atol=1e-6):
        return f"K is not an intrinsic matrix (singular, or its last row {K[2].tolist()} is not [0, 0, 1])"
    return None


def load_vertices(path: Path) -> np.ndarray:
    """(N, 3) body vertices of one frame, finite; DataReadError naming the file otherwise."""
    verts = load_npy(path, "vertex file")
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0 or not np.issubdtype(verts.dtype, np.number):
        raise DataReadError(path, f"vertex file holds an array of shape {verts.shape} ({verts.dtype}), expected "
                                  "(N, 3) vertex positions; replace it")
    if not np.all(np.isfinite(verts)):
        raise DataReadError(path, f"vertex file holds NaN or Inf ({int((~np.isfinite(verts)).any(1).sum())} of "
                                  f"{len(verts)} vertices); replace it with a clean copy")
    return verts.astype(np.float64, copy=False)
