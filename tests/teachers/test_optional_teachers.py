"""Optional teachers (openpifpaf, DensePose CSE): pure conversions everywhere, real runs where installed."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from ghnerf.body25 import JOINT_INDEX as J
from teachers.base import TeacherUnavailable
from teachers.densepose_cse import paste_box_embedding
from teachers.openpifpaf_pose import coco17_maps_to_body25, coco17_to_body25
from teachers.registry import availability, build_teacher

HAS_OPP = importlib.util.find_spec("openpifpaf") is not None
HAS_D2 = importlib.util.find_spec("detectron2") is not None


def test_coco17_to_body25_hand_computed():
    k = np.zeros((17, 3))
    k[:, 2] = 0.9
    k[:, 0] = np.arange(17) * 10.0
    k[:, 1] = 100.0
    k[5] = (50, 80, 0.8)   # left shoulder
    k[6] = (30, 80, 0.6)   # right shoulder
    k[11] = (48, 140, 0.7)  # left hip
    k[12] = (32, 140, 0.9)  # right hip
    k[3, 2] = 0.0          # left ear missing
    b, missing = coco17_to_body25(k)
    np.testing.assert_allclose(b[J["Neck"]], (40, 80, 0.6))
    np.testing.assert_allclose(b[J["MidHip"]], (40, 140, 0.7))
    np.testing.assert_allclose(b[J["LShoulder"]], (50, 80, 0.8))
    np.testing.assert_allclose(b[J["RShoulder"]], (30, 80, 0.6))
    np.testing.assert_allclose(b[J["LEye"]], (10, 100, 0.9))  # COCO 1 = left_eye
    assert missing[J["LEar"]] and np.isnan(b[J["LEar"], 0])
    for foot in ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"):
        assert missing[J[foot]]
    maps = np.random.default_rng(0).random((17, 4, 5))
    m25 = coco17_maps_to_body25(maps)
    np.testing.assert_allclose(m25[J["Neck"]], np.minimum(maps[5], maps[6]))
    assert m25[J["LHeel"]].max() == 0


def test_paste_box_embedding_hand_computed():
    emb = np.zeros((16, 4, 4))
    emb[0] = np.arange(16).reshape(4, 4)
    seg = np.zeros((2, 4, 4))
    seg[1] = 1.0
    seg[1, 0, 0] = -1.0  # top-left cell is background
    cse, mask = paste_box_embedding(emb, seg, (2, 2, 6, 6), height=8, width=8, stride=1)
    np.testing.assert_allclose(cse[0, 2:6, 2:6], np.where(np.arange(16).reshape(4, 4) == 0, 0, np.arange(16).reshape(4, 4)))
    expected = np.zeros((8, 8), bool)
    expected[2:6, 2:6] = True
    expected[2, 2] = False
    np.testing.assert_array_equal(mask, expected)
    assert cse[:, ~mask].max() == 0
    # stride 2: cell centres at 0.5, 2.5, 4.5 ... pick the box cells in between
    cse2, mask2 = paste_box_embedding(emb, seg, (2, 2, 6, 6), height=8, width=8, stride=2)
    assert cse2.shape == (16, 4, 4) and mask2[1:3, 1:3].sum() == 4


@pytest.mark.skipif(HAS_OPP, reason="openpifpaf is installed here")
def test_openpifpaf_missing_package_names_the_recipe():
    with pytest.raises(TeacherUnavailable, match="docs/optional-teachers.md"):
        build_teacher("openpifpaf", {"checkpoint": "/nonexistent.pkl"})
    ok, reason = availability("openpifpaf")
    assert not ok and "optional-teachers.md" in reason


@pytest.mark.skipif(HAS_D2, reason="detectron2 is installed here")
def test_densepose_missing_package_names_the_recipe():
    with pytest.raises(TeacherUnavailable, match="docs/optional-teachers.md"):
        build_teacher("densepose-cse", {"config": "/x.yaml", "weights": "/x.pkl"})


@pytest.mark.skipif(not HAS_OPP, reason="openpifpaf not installed: see docs/optional-teachers.md")
def test_openpifpaf_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(TeacherUnavailable, match=str(tmp_path / "none.pkl")):
        build_teacher("openpifpaf", {"checkpoint": str(tmp_path / "none.pkl")})


@pytest.mark.skipif(not HAS_OPP or not os.environ.get("GHNERF_OPENPIFPAF_CHECKPOINT"),
                    reason="openpifpaf or its checkpoint (GHNERF_OPENPIFPAF_CHECKPOINT) not available here")
def test_openpifpaf_on_the_astronaut():
    from skimage import data

    from ghnerf.cameras import Camera
    from teachers.base import TeacherInput

    t = build_teacher("openpifpaf", {})
    img = data.astronaut()
    out = t.predict([TeacherInput("astro", img, Camera(np.eye(3), np.eye(3), np.zeros(3), height=512, width=512))])[0]
    assert np.hypot(*(out.keypoints[J["Nose"], :2] - (222, 130))) < 15
    assert out.heatmaps.shape == (25, 256, 256) and out.heatmaps.max() <= 1


@pytest.mark.skipif(not HAS_D2, reason="detectron2 not installed: see docs/optional-teachers.md")
def test_densepose_missing_files_name_them(tmp_path):
    with pytest.raises(TeacherUnavailable, match="cse.yaml"):
        build_teacher("densepose-cse", {"config": str(tmp_path / "cse.yaml"), "weights": str(tmp_path / "m.pkl")})
