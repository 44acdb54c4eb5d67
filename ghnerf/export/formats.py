"""Keypoint file formats other tools read, as pure functions from arrays to JSON-able objects.

* **OpenPose** ``--write_json`` (CMU-Perceptual-Computing-Lab/openpose ``doc/02_output.md``): one file per image,
  ``<image basename>_keypoints.json`` (OpenPose and EasyMocap pair a file with its image by that basename),
  ``{"version": 1.3, "people": [...]}``; each person holds ``person_id`` ([-1]: no tracking) and every keypoint
  array OpenPose writes (:data:`OPENPOSE_PERSON_KEYS`), the face / hand / 3D ones empty as OpenPose leaves them
  without ``--face``, ``--hand`` and ``--3d``. BODY_25, flat ``x, y, c``; a missing joint is ``0, 0, 0``; a
  frame with nobody has ``"people": []``. EasyMocap's OpenPose loader reads every one of those keys.
* **COCO keypoints**: results (what ``pycocotools`` ``COCO.loadRes`` reads) are a list of
  ``{"image_id", "category_id": 1, "keypoints": [x, y, c] * 17, "score"}``, COCO-17 from BODY_25 by EasyMocap's
  ``COCO17_IN_BODY25``; ``score`` is the mean confidence of the joints present. The ground truth
  (``COCO(...)``) has ``images``, ``annotations`` (``keypoints`` with visibility 2 / 0, ``num_keypoints``,
  ``area``, ``bbox``, ``iscrowd``) and the person category.
* **EasyMocap** ``keypoints3d/{frame:06d}.json``: ``[{"id": 0, "keypoints3d": [[x, y, z, c], ...]}]``, 25 joints,
  metres; a missing joint is ``[0, 0, 0, 0]``.

Inputs mark a missing joint with confidence 0 or a NaN coordinate.
"""

from pathlib import Path

import numpy as np
from jaxtyping import Bool, Float

from ghnerf.base.body25 import (
    COCO17_IN_BODY25,
    COCO17_NAMES,
    COCO17_SKELETON,
    NUM_JOINTS,
)
from ghnerf.base.errors import ConfigError

OPENPOSE_VERSION = 1.3
# Every array of a person in OpenPose's --write_json output, in the order OpenPose writes them.
OPENPOSE_PERSON_KEYS = ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                        "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d")
PERSON_CATEGORY = 1
COCO_VISIBLE = 2  # COCO visibility flag: labelled and visible (0 = not labelled)


def _present(points: np.ndarray, dims: int) -> np.ndarray:
    """(N, dims + 1) with missing rows (NaN coordinate or confidence <= 0) zeroed."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != dims + 1:
        raise ConfigError(f"keypoints must be (N, {dims + 1}), got {points.shape}")
    ok = np.isfinite(points).all(1) & (points[:, dims] > 0)
    return np.where(ok[:, None], points, 0.0)


def openpose_filename(image_path: str | Path) -> str:
    """``<image basename>_keypoints.json``: the name OpenPose gives the file of ``image_path``."""
    return f"{Path(image_path).stem}_keypoints.json"


def openpose_json(keypoints: Float[np.ndarray, "25 3"]) -> dict:
    """One image's OpenPose file; ``people`` is empty when every joint is missing."""
    kp = _present(keypoints, 2)
    if len(kp) != NUM_JOINTS:
        raise ConfigError(f"OpenPose BODY_25 needs {NUM_JOINTS} joints, got {len(kp)}")
    if not kp[:, 2].any():
        return {"version": OPENPOSE_VERSION, "people": []}
    person = {"person_id": [-1]} | {key: [] for key in OPENPOSE_PERSON_KEYS}
    person["pose_keypoints_2d"] = kp.reshape(-1).tolist()
    return {"version": OPENPOSE_VERSION, "people": [person]}


def coco_result(image_id: int, keypoints: Float[np.ndarray, "25 3"]) -> dict | None:
    """One COCO keypoint result (COCO-17 from BODY_25), or None when no COCO joint is present."""
    kp = _present(keypoints, 2)[list(COCO17_IN_BODY25)]
    if not kp[:, 2].any():
        return None
    return {"image_id": int(image_id), "category_id": PERSON_CATEGORY, "keypoints": kp.reshape(-1).tolist(),
            "score": float(kp[kp[:, 2] > 0, 2].mean())}


def coco_annotation(ann_id: int, image_id: int, joints: Float[np.ndarray, "25 3"],
                    mask: Bool[np.ndarray, "H W"]) -> dict:
    """One ground-truth person: COCO-17 joints of the dataset's BODY_25 ``joints`` (visibility 2 when present
    and inside the image, else 0 at 0, 0), ``area`` = the mask's pixel count, ``bbox`` = the mask's box."""
    h, w = mask.shape
    kp = _present(joints, 2)[list(COCO17_IN_BODY25)]
    inside = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    out = np.zeros((len(kp), 3))
    out[inside, :2], out[inside, 2] = kp[inside, :2], COCO_VISIBLE
    ys, xs = np.nonzero(mask)
    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)] \
        if len(xs) else [0.0, 0.0, 0.0, 0.0]
    return {"id": int(ann_id), "image_id": int(image_id), "category_id": PERSON_CATEGORY, "iscrowd": 0,
            "keypoints": out.reshape(-1).tolist(), "num_keypoints": int(inside.sum()), "area": float(mask.sum()),
            "bbox": bbox}


def coco_ground_truth(images: list[dict], annotations: list[dict]) -> dict:
    """A COCO keypoints file: ``images`` (id, file_name, height, width), ``annotations`` (may be empty when the
    dataset has no joints) and the person category with its 17 keypoint names and skeleton."""
    return {"info": {"description": "images of a GHNeRF-distill keypoint export"}, "images": images,
            "annotations": annotations,
            "categories": [{"id": PERSON_CATEGORY, "name": "person", "supercategory": "person",
                            "keypoints": list(COCO17_NAMES), "skeleton": [list(p) for p in COCO17_SKELETON]}]}


def easymocap_keypoints3d(joints: Float[np.ndarray, "25 4"]) -> list[dict]:
    """One frame's EasyMocap ``keypoints3d`` file (one person, id 0)."""
    kp = _present(joints, 3)
    if len(kp) != NUM_JOINTS:
        raise ConfigError(f"EasyMocap body25 needs {NUM_JOINTS} joints, got {len(kp)}")
    return [{"id": 0, "keypoints3d": kp.tolist()}]
