"""Keypoint file formats other tools read, as pure functions from arrays to JSON-able objects.

* **OpenPose** (``<image>_keypoints.json``): ``{"version": 1.3, "people": [{"pose_keypoints_2d": [x, y, c, ...]}]}``,
  25 BODY_25 joints; a missing joint is ``0, 0, 0`` as OpenPose writes it (what ZJU-MoCap's ``keypoints2d``
  and EasyMocap read).
* **COCO keypoint results** (what ``pycocotools`` ``COCO.loadRes`` / ``COCOeval`` read): a list of
  ``{"image_id", "category_id": 1, "keypoints": [x, y, c] * 17, "score"}``, COCO-17 from BODY_25 by EasyMocap's
  ``COCO17_IN_BODY25``; ``score`` is the mean confidence of the present joints. The images they refer to go in
  a COCO-style ``images`` file beside them (``coco_images``).
* **EasyMocap** ``keypoints3d/{frame:06d}.json``: ``[{"id": 0, "keypoints3d": [[x, y, z, c], ...]}]``, 25 joints,
  metres; a missing joint is ``[0, 0, 0, 0]``.

Inputs mark a missing joint with confidence 0 or a NaN coordinate.
"""

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import COCO17_IN_BODY25, COCO17_NAMES, COCO17_SKELETON, NUM_JOINTS
from ghnerf.base.errors import ConfigError

OPENPOSE_VERSION = 1.3
PERSON_CATEGORY = 1


def _present(points: np.ndarray, dims: int) -> np.ndarray:
    """(N, dims + 1) with missing rows (NaN coordinate or confidence <= 0) zeroed."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != dims + 1:
        raise ConfigError(f"keypoints must be (N, {dims + 1}), got {points.shape}")
    ok = np.isfinite(points).all(1) & (points[:, dims] > 0)
    return np.where(ok[:, None], points, 0.0)


def openpose_json(keypoints: Float[np.ndarray, "25 3"]) -> dict:
    """One view's OpenPose file; no person when every joint is missing."""
    kp = _present(keypoints, 2)
    if len(kp) != NUM_JOINTS:
        raise ConfigError(f"OpenPose BODY_25 needs {NUM_JOINTS} joints, got {len(kp)}")
    people = [{"person_id": [-1], "pose_keypoints_2d": kp.reshape(-1).tolist()}] if kp[:, 2].any() else []
    return {"version": OPENPOSE_VERSION, "people": people}


def coco_result(image_id: int, keypoints: Float[np.ndarray, "25 3"]) -> dict | None:
    """One COCO keypoint result (COCO-17 from BODY_25), or None when no COCO joint is present."""
    kp = _present(keypoints, 2)[list(COCO17_IN_BODY25)]
    if not kp[:, 2].any():
        return None
    return {"image_id": int(image_id), "category_id": PERSON_CATEGORY, "keypoints": kp.reshape(-1).tolist(),
            "score": float(kp[kp[:, 2] > 0, 2].mean())}


def coco_images(images: list[dict]) -> dict:
    """A COCO keypoints file with ``images`` (id, file_name, height, width), no annotations, and the person
    category with its 17 keypoint names and skeleton: the ground-truth side ``COCO.loadRes`` needs."""
    return {"info": {"description": "images of a GHNeRF-distill keypoint export"}, "images": images,
            "annotations": [], "categories": [{"id": PERSON_CATEGORY, "name": "person", "supercategory": "person",
                                               "keypoints": list(COCO17_NAMES),
                                               "skeleton": [list(p) for p in COCO17_SKELETON]}]}


def easymocap_keypoints3d(joints: Float[np.ndarray, "25 4"]) -> list[dict]:
    """One frame's EasyMocap ``keypoints3d`` file (one person, id 0)."""
    kp = _present(joints, 3)
    if len(kp) != NUM_JOINTS:
        raise ConfigError(f"EasyMocap body25 needs {NUM_JOINTS} joints, got {len(kp)}")
    return [{"id": 0, "keypoints3d": kp.tolist()}]
