"""Joints a triangulation left missing, lifted from one view at a triangulated neighbour's depth."""

import numpy as np
import pytest
import torch

from ghnerf.base.body25 import JOINT_INDEX, NUM_JOINTS
from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError
from ghnerf.base.joint_lifting import lift_missing_joints, nearest_present_joint
from ghnerf.student.config import preset
from ghnerf.student.joint_hypotheses import triangulate_source_keypoints

K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
ELBOW, WRIST, SHOULDER = JOINT_INDEX["RElbow"], JOINT_INDEX["RWrist"], JOINT_INDEX["RShoulder"]


def _camera(eye) -> Camera:
    R, T = look_at(np.asarray(eye, float), np.array([0.0, 0.0, 1.0]))
    return Camera(K, R, T, height=256, width=256)


CAMERAS = [_camera([2.5, 0.4, 1.3]), _camera([0.3, 2.6, 1.0])]
JOINTS = np.random.default_rng(0).normal([0.0, 0.0, 1.0], 0.25, size=(NUM_JOINTS, 3))


def _keypoints(conf=0.9):
    return np.stack([np.concatenate([c.project(JOINTS, distort=False), np.full((NUM_JOINTS, 1), conf)], 1)
                     for c in CAMERAS])


def test_a_joint_one_view_saw_lands_on_its_ray_at_the_neighbours_depth():
    kp = _keypoints()
    kp[1, WRIST, 2] = 0.0  # view 1 missed the wrist: no two views agree on it
    tri = JOINTS.copy()
    tri[WRIST] = np.nan
    lifted = lift_missing_joints(CAMERAS, kp, tri)
    np.testing.assert_array_equal(np.delete(lifted, WRIST, 0), np.delete(JOINTS, WRIST, 0))  # the rest as they were
    cam = CAMERAS[0]
    np.testing.assert_allclose(cam.project(lifted[WRIST][None], distort=False)[0], kp[0, WRIST, :2], atol=1e-9)
    assert cam.to_camera(lifted[WRIST][None])[0, 2] == pytest.approx(cam.to_camera(JOINTS[ELBOW][None])[0, 2])


def test_the_most_confident_view_wins_and_unseen_or_unconnected_joints_stay_missing():
    kp = _keypoints()
    kp[1, WRIST, :2] += 40.0  # the views disagree; view 1 is the more confident one
    kp[1, WRIST, 2] = 0.95
    kp[:, SHOULDER, 2] = 0.0  # nobody saw the shoulder
    tri = JOINTS.copy()
    tri[[WRIST, SHOULDER]] = np.nan
    lifted = lift_missing_joints(CAMERAS, kp, tri)
    np.testing.assert_allclose(CAMERAS[1].project(lifted[WRIST][None], distort=False)[0], kp[1, WRIST, :2],
                               atol=1e-9)
    assert np.isnan(lifted[SHOULDER]).all()
    # nothing triangulated: nothing to take a depth from
    assert np.isnan(lift_missing_joints(CAMERAS, kp, np.full((NUM_JOINTS, 3), np.nan))).all()
    # the neighbour behind the camera: no depth to use
    behind = JOINTS.copy()
    behind[WRIST] = np.nan
    behind[ELBOW] = 2 * CAMERAS[0].center - np.array([0.0, 0.0, 1.0])
    kp = _keypoints()
    kp[1, WRIST, 2] = 0.0
    lifted = lift_missing_joints(CAMERAS, kp, behind)
    assert CAMERAS[0].to_camera(behind[ELBOW][None])[0, 2] < 0 and np.isnan(lifted[WRIST]).all()


def test_nearest_present_joint_follows_the_skeleton():
    present = np.ones(NUM_JOINTS, bool)
    present[WRIST] = False
    assert nearest_present_joint(WRIST, present) == ELBOW
    present[ELBOW] = False
    assert nearest_present_joint(WRIST, present) == SHOULDER
    assert nearest_present_joint(WRIST, np.zeros(NUM_JOINTS, bool)) is None


def test_the_students_hypotheses_lift_when_its_config_says_so():
    kp = _keypoints()
    kp[1, WRIST, 2] = 0.0
    src_K = torch.tensor(np.stack([K, K]), dtype=torch.float64)
    src_w2c = torch.tensor(np.stack([c.world_to_cam for c in CAMERAS]), dtype=torch.float64)
    plain = triangulate_source_keypoints(kp, src_K, src_w2c)
    lifted = triangulate_source_keypoints(kp, src_K, src_w2c, lift=True)
    assert torch.isnan(plain[WRIST]).all() and torch.isfinite(lifted[WRIST]).all()
    np.testing.assert_allclose(lifted[ELBOW].numpy(), JOINTS[ELBOW], atol=1e-6)
    assert preset("ghnerf-mediapipe-hypotheses", lift_missing_joints=True).lift_missing_joints
    with pytest.raises(ConfigError, match="lift_missing_joints"):
        preset("ghnerf-mediapipe", lift_missing_joints=True)
