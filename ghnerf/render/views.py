"""The student's input for any camera of a frame, captured or virtual (no ground-truth image needed).

Source views are chosen as in training (:func:`ghnerf.data.nearest_source_views`):
the nearest candidate capture cameras; a camera that coincides with a capture camera
never uses that camera as its own source.
"""

from collections.abc import Sequence

import numpy as np
import torch

from ghnerf.base.cameras import Camera
from ghnerf.data import bound_mask, nearest_source_views
from ghnerf.data.records import MultiViewFrame
from ghnerf.student.data import Example, source_batch

SAME_CAMERA_M = 1e-6


def _same(a: Camera, b: Camera) -> bool:
    return bool(np.linalg.norm(a.center - b.center) < SAME_CAMERA_M and np.allclose(a.R, b.R, atol=1e-9))


def source_views(captures: Sequence[Camera], camera: Camera, candidates: Sequence[int], k: int) -> list[int]:
    """Indices of the ``k`` capture cameras nearest to ``camera`` among ``candidates`` (never ``camera`` itself)."""
    same = [i for i, c in enumerate(captures) if _same(c, camera)]
    if same:
        return nearest_source_views(captures, same[0], candidates, k)
    return nearest_source_views([*captures, camera], len(captures), candidates, k)


def view_example(frame: MultiViewFrame, camera: Camera, sources: list[int], scale: float,
                 name: str = "virtual") -> Example:
    """An :class:`~ghnerf.student.data.Example` for ``camera`` without targets.

    Args:
        frame: the capture frame (source images, body box).
        camera: undistorted pinhole camera at the scaled image size (H, W) the student renders.
        sources: capture view indices of ``frame`` used as source views.
        scale: factor from the capture images to the student's images (source images are resized by it).
        name: the example's camera name (its ``key[2]``).
    Returns:
        image: (H, W, 3) zeros (nothing to compare with); mask = box: (H, W) the projected body box, the
        region :func:`~ghnerf.student.train.render_full_view` renders.
    """
    box = torch.from_numpy(bound_mask(frame, camera))
    H, W = camera.height, camera.width
    return Example((frame.subject, frame.frame_id, name), source_batch(frame, sources, scale, camera),
                   torch.zeros(H, W, 3), box, box, None, None, None,
                   None if frame.joints3d is None else torch.from_numpy(frame.joints3d).float(), None, None,
                   frame.bounds)
