"""PCK over all 25 joints and over the 23 MediaPipe defines (no small toes), against hand counts."""

import numpy as np
import pytest

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.errors import ConfigError
from ghnerf.eval.metrics import pck
from teachers.mediapipe_pose import MediaPipeTeacher


def views():
    """Two views, torso (LShoulder-RHip) 100 px, so the PCK@0.2 radius is 20 px."""
    gt = np.zeros((2, 25, 3))
    gt[..., 0] = np.arange(25) * 7.0
    gt[..., 1] = 50.0
    gt[..., 2] = 1.0
    gt[:, J["LShoulder"], :2] = (0.0, 0.0)
    gt[:, J["RHip"], :2] = (60.0, 80.0)
    pred = gt.copy()
    small_toes = [J["LSmallToe"], J["RSmallToe"]]
    pred[:, small_toes, :2] = np.nan  # the teacher never gives them
    pred[0, J["RElbow"], 0] += 30.0  # wrong
    pred[0, J["RWrist"], 1] += 19.0  # right (inside 20 px)
    gt[1, J["Nose"], 2] = 0.0  # not in the ground truth: excluded
    gt[1, J["LSmallToe"], 2] = 0.0
    pred[1, J["RKnee"], :2] += (15.0, 20.0)  # 25 px: wrong
    return pred, gt


def test_mediapipe_defines_23_joints_without_the_small_toes():
    assert len(MediaPipeTeacher.joints) == 23
    assert set(range(25)) - set(MediaPipeTeacher.joints) == {J["LSmallToe"], J["RSmallToe"]}


def test_pck_on_all_joints_and_on_the_teachers_joints():
    pred, gt = views()
    every = pck(pred, gt)
    # view 0: 25 evaluated, wrong: 2 small toes + RElbow -> 22; view 1: 23 evaluated, wrong: RSmallToe + RKnee -> 21
    assert (every.correct, every.evaluated) == (43, 48)
    teacher = pck(pred, gt, joints=MediaPipeTeacher.joints)
    # view 0: 23 evaluated, wrong: RElbow -> 22; view 1: 22 evaluated (no Nose), wrong: RKnee -> 21
    assert (teacher.correct, teacher.evaluated) == (43, 45)
    assert teacher.value == pytest.approx(43 / 45)
    assert np.isnan(teacher.per_joint[[J["LSmallToe"], J["RSmallToe"]]]).all()
    assert teacher.per_joint[J["RElbow"]] == 0.5 and teacher.per_joint[J["RWrist"]] == 1.0
    per_view = [pck(p[None], g[None], joints=MediaPipeTeacher.joints) for p, g in zip(pred, gt)]
    assert [(r.correct, r.evaluated) for r in per_view] == [(22, 23), (21, 22)]


@pytest.mark.parametrize("joints", [[], [25], [-1]])
def test_pck_refuses_joint_indices_out_of_range(joints):
    pred, gt = views()
    with pytest.raises(ConfigError, match="pck joints"):
        pck(pred, gt, joints=joints)
