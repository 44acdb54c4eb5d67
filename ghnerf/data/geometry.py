"""Per-view geometry derived from a frame: near/far depth range and the projected body box.

As ENeRF (lib/datasets/zjumocap/enerf.py ``read_tar``): the vertex bounding box
padded by 0.1 m, its 8 corners taken to camera coordinates, ``near = max(min z, 0.1)``,
``far = max z``; the bound mask is the convex hull of the projected corners.
"""

import itertools

import cv2
import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera
from ghnerf.data.records import MultiViewFrame
from ghnerf.base.errors import DataReadError

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
