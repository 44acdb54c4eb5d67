"""The MediaPipe teacher on a real photograph and on synthetic people."""

import numpy as np
import pytest

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.cameras import Camera
from teachers.base import TeacherInput
from teachers.mediapipe_pose import mediapipe33_to_body25

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def teacher():
    from teachers.mediapipe_pose import MediaPipeTeacher

    t = MediaPipeTeacher()
    yield t
    t.close()


def _view(image):
    h, w = image.shape[:2]
    return TeacherInput("photo", image, Camera(np.eye(3), np.eye(3), np.zeros(3), height=h, width=w))


def test_astronaut_photograph(teacher):
    """skimage's astronaut (512 x 512, Eileen Collins): joints located by hand on the picture."""
    from skimage import data

    out = teacher.predict([_view(data.astronaut())])[0]
    hand_checked = {  # (x, y) read off the image; tolerance in px
        "Nose": ((222, 130), 12), "REye": ((204, 104), 12), "LEye": ((250, 112), 12),
        "RShoulder": ((115, 240), 25), "LShoulder": ((305, 255), 25), "RElbow": ((65, 410), 30),
    }
    for name, ((x, y), tol) in hand_checked.items():
        got = out.keypoints[J[name], :2]
        assert np.hypot(*(got - (x, y))) < tol, (name, got)
    # the subject's right shoulder is on the image's left (she faces the camera)
    assert out.keypoints[J["RShoulder"], 0] < out.keypoints[J["LShoulder"], 0]
    # legs are out of the frame: missing, and their heatmaps empty
    for name in ("RKnee", "LKnee", "RAnkle", "LAnkle", "LSmallToe"):
        assert out.missing[J[name]] and out.heatmaps[J[name]].max() == 0
    # heatmap peaks sit on the keypoints (stride 2 codec)
    nose = out.heatmaps[J["Nose"]]
    iy, ix = np.unravel_index(nose.argmax(), nose.shape)
    assert abs(ix * 2 + 0.5 - out.keypoints[J["Nose"], 0]) <= 2 and abs(iy * 2 + 0.5 - out.keypoints[J["Nose"], 1]) <= 2


def test_no_person_gives_all_missing(teacher):
    out = teacher.predict([_view(np.full((128, 128, 3), 90, np.uint8))])[0]
    assert out.missing.all() and out.heatmaps.max() == 0 and out.extras["detected"] is False


def test_mapping_midpoints_and_outside_image():
    lm = np.zeros((33, 4))
    lm[:, 3] = 0.9
    lm[11, :2], lm[12, :2] = (0.6, 0.3), (0.4, 0.3)  # left / right shoulder
    lm[11, 3], lm[12, 3] = 0.9, 0.7
    lm[23, :2], lm[24, :2] = (0.55, 0.6), (0.45, 0.6)
    lm[26, :2] = (0.5, 1.4)  # right knee below the image
    kp, missing = mediapipe33_to_body25(lm, 200, 100)
    np.testing.assert_allclose(kp[J["Neck"]], (100, 30, 0.7))
    np.testing.assert_allclose(kp[J["MidHip"]], (100, 60, 0.9))
    assert missing[J["RKnee"]] and missing[J["LSmallToe"]] and missing[J["RSmallToe"]]
    assert not missing[J["LBigToe"]]
