"""The format functions against their consumers' documented rules."""

import numpy as np
import pytest

from ghnerf.export.formats import coco_annotation, coco_result, openpose_filename, openpose_json


def test_a_frame_with_nobody_has_no_people():
    kp = np.zeros((25, 3))
    kp[:, :2] = 10.0  # coordinates without confidence: not a person
    assert openpose_json(kp) == {"version": 1.3, "people": []}
    kp[:, :2] = np.nan
    assert openpose_json(kp) == {"version": 1.3, "people": []}


def test_openpose_file_is_named_after_its_image():
    assert openpose_filename("/data/CoreView_377/Camera_B1/0000.jpg") == "0000_keypoints.json"


def test_coco_result_scores_over_the_joints_present_only():
    kp = np.zeros((25, 3))
    kp[0] = (10, 20, 0.9)  # nose
    kp[5] = (30, 40, 0.5)  # LShoulder -> COCO left_shoulder
    kp[2] = (np.nan, np.nan, 0.7)  # RShoulder: NaN coordinates = missing, whatever its confidence
    res = coco_result(7, kp)
    assert res["score"] == pytest.approx(0.7)  # (0.9 + 0.5) / 2, not / 17 and not counting the NaN joint
    coco = np.array(res["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(coco[0], (10, 20, 0.9))
    np.testing.assert_array_equal(coco[5], (30, 40, 0.5))
    np.testing.assert_array_equal(coco[6], (0, 0, 0))


def test_coco_ground_truth_area_is_the_masks_and_joints_outside_are_unlabelled():
    mask = np.zeros((20, 30), bool)
    mask[2:12, 5:9] = True  # 10 x 4 = 40 pixels
    joints = np.zeros((25, 3))
    joints[0] = (6.5, 3.25, 1)  # nose, inside
    joints[16] = (31.0, 5.0, 1)  # LEye (COCO left_eye), outside the 30 px wide image
    ann = coco_annotation(3, 9, joints, mask)
    assert ann["area"] == 40 and ann["bbox"] == [5, 2, 4, 10] and ann["num_keypoints"] == 1
    kp = np.array(ann["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(kp[0], (6.5, 3.25, 2))
    np.testing.assert_array_equal(kp[1], (0, 0, 0))
    assert (ann["id"], ann["image_id"], ann["category_id"], ann["iscrowd"]) == (3, 9, 1, 0)
