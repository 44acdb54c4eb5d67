"""Optional teachers (openpifpaf, DensePose CSE): pure conversions and missing-package messages everywhere;
construction messages and API plumbing where the packages are installed; real runs where weights are given.

The package-dependent tests skip with "<package> not installed: see docs/optional-teachers.md". The plumbing
tests use *randomly initialised* networks saved as local checkpoint files, only to exercise the adapters'
calls into the real third-party APIs; they assert shapes and ranges, never pose quality. The real-weights tests
run when GHNERF_OPENPIFPAF_CHECKPOINT / GHNERF_DENSEPOSE_CONFIG + GHNERF_DENSEPOSE_WEIGHTS name local files.
"""

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.cameras import Camera
from ghnerf.base.keypoint_codec import HeatmapCodec
from teachers.base import CSE_DIM, TeacherInput, TeacherUnavailable
from teachers.densepose_cse import DensePoseCSETeacher, paste_box_embedding
from teachers.openpifpaf_pose import (OpenPifPafTeacher, _full_unpickling, coco17_maps_to_body25, coco17_to_body25,
                                      field_to_heatmap_grid)
from ghnerf.app.teacher_registry import build_teacher

RECIPE = "docs/optional-teachers.md"
FEET = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")


def _view(image: np.ndarray) -> TeacherInput:
    h, w = image.shape[:2]
    return TeacherInput("photo", image, Camera(np.eye(3), np.eye(3), np.zeros(3), height=h, width=w))


# ---------------------------------------------------------------- COCO-17 -> BODY_25 (pure)

def test_coco17_to_body25_hand_computed():
    k = np.zeros((17, 3))
    k[:, 0] = np.arange(17) * 10.0
    k[:, 1] = 100.0
    k[:, 2] = 0.9
    k[5] = (50, 80, 0.8)    # left_shoulder
    k[6] = (30, 70, 0.6)    # right_shoulder
    k[11] = (48, 140, 0.7)  # left_hip
    k[12] = (32, 150, 0.9)  # right_hip
    k[3, 2] = 0.0           # left_ear missing
    b, missing = coco17_to_body25(k)
    # Neck = mean of the shoulders ((50 + 30) / 2, (80 + 70) / 2), min confidence 0.6
    np.testing.assert_allclose(b[J["Neck"]], (40, 75, 0.6))
    # MidHip = ((48 + 32) / 2, (140 + 150) / 2), min(0.7, 0.9)
    np.testing.assert_allclose(b[J["MidHip"]], (40, 145, 0.7))
    np.testing.assert_allclose(b[J["LShoulder"]], (50, 80, 0.8))
    np.testing.assert_allclose(b[J["RShoulder"]], (30, 70, 0.6))
    np.testing.assert_allclose(b[J["Nose"]], (0, 100, 0.9))
    np.testing.assert_allclose(b[J["LEye"]], (10, 100, 0.9))    # COCO 1 left_eye
    np.testing.assert_allclose(b[J["REye"]], (20, 100, 0.9))    # COCO 2 right_eye
    np.testing.assert_allclose(b[J["REar"]], (40, 100, 0.9))    # COCO 4 right_ear
    np.testing.assert_allclose(b[J["RWrist"]], (100, 100, 0.9))  # COCO 10 right_wrist
    np.testing.assert_allclose(b[J["LAnkle"]], (150, 100, 0.9))  # COCO 15 left_ankle
    np.testing.assert_allclose(b[J["RAnkle"]], (160, 100, 0.9))  # COCO 16 right_ankle
    assert missing[J["LEar"]] and np.isnan(b[J["LEar"], :2]).all() and b[J["LEar"], 2] == 0
    for foot in FEET:
        assert missing[J[foot]] and np.isnan(b[J[foot], 0]) and b[J[foot], 2] == 0
    assert missing.sum() == 1 + len(FEET)


def test_coco17_to_body25_neck_needs_both_shoulders():
    k = np.zeros((17, 3))
    k[6] = (30, 70, 0.6)  # right shoulder only
    b, missing = coco17_to_body25(k)
    assert missing[J["Neck"]] and missing[J["MidHip"]] and not missing[J["RShoulder"]]
    assert missing.sum() == 24


def test_coco17_maps_to_body25_channels_and_midpoint_gaussians():
    codec = HeatmapCodec(stride=2, sigma=4.0)
    height, width = 40, 60
    maps = np.random.default_rng(0).random((17, 20, 30)).astype(np.float32)
    maps[0, 0, 0] = 1.7  # clipped to 1
    kp = np.full((25, 3), np.nan)
    kp[:, 2] = 0
    kp[J["Neck"]] = (20.5, 10.5, 0.6)  # cell centre (x, y) = (j * 2 + 0.5, i * 2 + 0.5) -> cell (i, j) = (5, 10)
    out = coco17_maps_to_body25(maps, kp, codec, height, width)
    assert out.shape == (25, 20, 30) and out.dtype == np.float32
    np.testing.assert_allclose(out[J["RShoulder"]], maps[6])   # COCO 6 right_shoulder -> BODY_25 2
    np.testing.assert_allclose(out[J["LHip"]], maps[11])       # COCO 11 left_hip -> BODY_25 12
    assert out[J["Nose"], 0, 0] == 1.0
    assert np.unravel_index(out[J["Neck"]].argmax(), (20, 30)) == (5, 10)
    assert out[J["Neck"]].max() == pytest.approx(0.6)
    # one cell (2 px) away along x: exp(-2^2 / (2 * 4^2))
    assert out[J["Neck"], 5, 11] == pytest.approx(0.6 * np.exp(-4 / 32), rel=1e-5)
    assert out[J["MidHip"]].max() == 0  # missing -> empty map
    for foot in FEET:
        assert out[J[foot]].max() == 0


def test_field_to_heatmap_grid_maps_cells_to_image_pixels():
    """A field cell (i, j) lies on padded-input pixel (8 j, 8 i); with offset (-2, -6) and scale 1 that is image
    pixel (8 j - 2, 8 i - 6), the inverse of openpifpaf's Annotation.inverse_transform (+offset, /scale)."""
    field = np.zeros((1, 10, 12))
    field[0, 5, 7] = 1.0
    out = field_to_heatmap_grid(field, 8, (-2.0, -6.0), (1.0, 1.0), HeatmapCodec(1, 7.0), 80, 96)[0]
    assert out.shape == (80, 96)
    assert np.unravel_index(out.argmax(), out.shape) == (34, 54) and out.max() == pytest.approx(1.0)
    # bilinear: half-way to the next cell (4 px) carries half the value
    assert out[34, 58] == pytest.approx(0.5)
    # scale 0.5 (image rescaled to half before the network): image pixel = (padded + offset) / scale = (56, 40) * 2
    out2 = field_to_heatmap_grid(field, 8, (0.0, 0.0), (0.5, 0.5), HeatmapCodec(1, 7.0), 120, 160)[0]
    assert np.unravel_index(out2.argmax(), out2.shape) == (80, 112)


def test_full_unpickling_is_scoped(monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    with _full_unpickling():
        assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")
    with _full_unpickling():
        pass
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "0"
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(TeacherUnavailable, match="TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        with _full_unpickling():
            pass


# ---------------------------------------------------------------- DensePose box paste (pure)

def test_paste_box_embedding_same_size_box_is_a_copy():
    emb = np.zeros((16, 4, 4))
    emb[0] = np.arange(16).reshape(4, 4)
    emb[15] = -1.0
    seg = np.zeros((2, 4, 4))
    seg[1] = 1.0
    seg[1, 0, 0] = -1.0  # top-left box pixel is background
    cse, mask = paste_box_embedding(emb, seg, (2, 2, 6, 6), height=8, width=8, stride=1)
    assert cse.shape == (16, 8, 8) and cse.dtype == np.float32 and mask.shape == (8, 8)
    # box pixel k spans [2 + k, 3 + k): its centre samples map pixel k exactly
    expected0 = np.zeros((8, 8))
    expected0[2:6, 2:6] = np.arange(16).reshape(4, 4)
    np.testing.assert_allclose(cse[0], expected0)
    expected_mask = np.zeros((8, 8), bool)
    expected_mask[2:6, 2:6] = True
    expected_mask[2, 2] = False
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_allclose(cse[15], -1.0 * expected_mask)
    assert not cse[1:15].any() and not cse[:, ~mask].any()


def test_paste_box_embedding_upsampled_hand_computed():
    """A 4 x 4 map into an 8 x 8 box: output pixel k samples map coordinate (k + 0.5) / 2 - 0.5, clamped to [0, 3]."""
    emb = np.zeros((16, 4, 4))
    emb[0] = np.arange(4)[None, :] + 4 * np.arange(4)[:, None]  # value 4 r + c
    seg = np.stack([np.zeros((4, 4)), np.ones((4, 4))])
    cse, mask = paste_box_embedding(emb, seg, (0, 0, 8, 8), height=8, width=8, stride=1)
    along = np.array([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    np.testing.assert_allclose(cse[0], 4 * along[:, None] + along[None, :], atol=1e-6)
    assert mask.all()
    # stride 2: cells centred on pixels 0.5, 2.5, 4.5, 6.5 = continuous 1, 3, 5, 7; box (2, 2, 6, 6) holds 3 and 5,
    # which sample map coordinates (3 - 2) - 0.5 = 0.5 and (5 - 2) - 0.5 = 2.5
    cse2, mask2 = paste_box_embedding(emb, seg, (2, 2, 6, 6), height=8, width=8, stride=2)
    assert cse2.shape == (16, 4, 4)
    expected = np.zeros((4, 4))
    expected[1:3, 1:3] = [[4 * 0.5 + 0.5, 4 * 0.5 + 2.5], [4 * 2.5 + 0.5, 4 * 2.5 + 2.5]]
    np.testing.assert_allclose(cse2[0], expected, atol=1e-6)
    assert mask2.sum() == 4 and mask2[1:3, 1:3].all()


def test_paste_box_embedding_clips_to_the_image_and_handles_empty_boxes():
    emb = np.ones((16, 4, 4))
    seg = np.stack([np.zeros((4, 4)), np.ones((4, 4))])
    cse, mask = paste_box_embedding(emb, seg, (-3, 5, 4, 20), height=10, width=10, stride=1)
    assert mask[5:, :4].all() and mask.sum() == 5 * 4
    for box in ((3, 3, 3, 8), (20, 20, 30, 30)):
        cse, mask = paste_box_embedding(emb, seg, box, height=10, width=10, stride=1)
        assert not mask.any() and not cse.any()


def test_paste_box_embedding_matches_detectron2_resize_for_integer_boxes():
    """For an integer box at stride 1 the result equals DensePose's own path (densepose/modeling/cse/utils.py):
    F.interpolate(E, size=(h, w), mode="bilinear"), mask = argmax(S) > 0, pasted at [y:y + h, x:x + w]."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    emb, seg = rng.normal(size=(16, 7, 7)), rng.normal(size=(2, 7, 7))
    x, y, w, h = 5, 9, 23, 31
    cse, mask = paste_box_embedding(emb, seg, (x, y, x + w, y + h), 50, 40, 1)
    e = F.interpolate(torch.tensor(emb)[None], size=(h, w), mode="bilinear")[0].numpy()
    s = F.interpolate(torch.tensor(seg)[None], size=(h, w), mode="bilinear")[0].numpy()
    m = s.argmax(0) > 0
    ref_mask = np.zeros((50, 40), bool)
    ref_mask[y:y + h, x:x + w] = m
    ref = np.zeros((16, 50, 40))
    ref[:, y:y + h, x:x + w] = e * m
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_allclose(cse, ref, atol=1e-5)


# ---------------------------------------------------------------- missing package (runs everywhere)

def test_openpifpaf_missing_package_names_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openpifpaf", None)  # import openpifpaf -> ImportError, installed or not
    with pytest.raises(TeacherUnavailable, match=RECIPE):
        OpenPifPafTeacher(tmp_path / "shufflenetv2k16.pkl", HeatmapCodec())


def test_densepose_missing_package_names_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "detectron2", None)
    monkeypatch.setitem(sys.modules, "densepose", None)
    with pytest.raises(TeacherUnavailable, match=RECIPE):
        DensePoseCSETeacher(tmp_path / "cse.yaml", tmp_path / "model_final.pkl")


def test_registry_reports_the_recipe_when_absent(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("openpifpaf", "detectron2") else real_find_spec(name, *a))
    with pytest.raises(TeacherUnavailable, match=RECIPE):
        build_teacher("openpifpaf", {"checkpoint": "/nonexistent.pkl"})
    with pytest.raises(TeacherUnavailable, match=RECIPE):
        build_teacher("densepose-cse", {"config": "/x.yaml", "weights": "/x.pkl"})


# ---------------------------------------------------------------- package present, files missing

def test_openpifpaf_missing_checkpoint_names_the_path(tmp_path):
    pytest.importorskip("openpifpaf", reason=f"openpifpaf not installed: see {RECIPE}")
    path = tmp_path / "weights" / "shufflenetv2k16.pkl"
    with pytest.raises(TeacherUnavailable, match="shufflenetv2k16") as info:
        OpenPifPafTeacher(path, HeatmapCodec())
    assert str(path) in str(info.value) and RECIPE in str(info.value) and "network" in str(info.value)


def test_densepose_missing_files_name_them(tmp_path):
    pytest.importorskip("detectron2", reason=f"detectron2 not installed: see {RECIPE}")
    pytest.importorskip("densepose", reason=f"detectron2's DensePose project not installed: see {RECIPE}")
    config = tmp_path / "densepose_rcnn_R_50_FPN_s1x.yaml"
    config.write_text("_BASE_: Base-DensePose-RCNN-FPN-Human.yaml\n")
    weights = tmp_path / "model_final_c4ea5f.pkl"
    with pytest.raises(TeacherUnavailable) as info:
        DensePoseCSETeacher(config, weights)
    assert str(weights) in str(info.value) and str(config) not in str(info.value) and RECIPE in str(info.value)
    with pytest.raises(TeacherUnavailable) as info:
        DensePoseCSETeacher(tmp_path / "absent.yaml", weights)
    assert str(tmp_path / "absent.yaml") in str(info.value) and str(weights) in str(info.value)


# ---------------------------------------------------------------- package present: API plumbing, random weights

@pytest.fixture(scope="module")
def random_openpifpaf_checkpoint(tmp_path_factory):
    """A randomly initialised shufflenetv2k16 with COCO keypoint heads (stride 8) saved as a local checkpoint."""
    pytest.importorskip("openpifpaf", reason=f"openpifpaf not installed: see {RECIPE}")
    import torch
    from openpifpaf import network
    from openpifpaf.plugins.coco.cocokp import CocoKp

    old = CocoKp.upsample_stride, network.Factory.base_name, network.Factory.checkpoint
    CocoKp.upsample_stride, network.Factory.checkpoint = 2, None
    try:
        torch.manual_seed(0)
        net, _ = network.Factory(base_name="shufflenetv2k16").factory(head_metas=CocoKp().head_metas)
    finally:
        CocoKp.upsample_stride, network.Factory.base_name, network.Factory.checkpoint = old
    path = tmp_path_factory.mktemp("opp") / "random-shufflenetv2k16.pkl"
    torch.save({"model": net, "epoch": 0}, path)
    return path


def test_openpifpaf_plumbing_with_random_weights(random_openpifpaf_checkpoint, monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    codec = HeatmapCodec(2, 7.0)
    t = OpenPifPafTeacher(random_openpifpaf_checkpoint, codec, device="cpu")
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # set only around the load
    assert t.field_stride == 8 and t.version.startswith("openpifpaf-0.13") and len(t.weights_digest) == 64
    img = np.random.default_rng(0).integers(0, 255, (101, 77, 3), dtype=np.uint8)
    out = t.predict([_view(img)])[0]
    assert out.heatmaps.shape == (25, 51, 39) and out.heatmaps.dtype == np.float32
    assert 0 <= out.heatmaps.min() and out.heatmaps.max() <= 1
    assert out.keypoints.shape == (25, 3) and out.missing.shape == (25,) and out.stride == 2
    assert "detected" in out.extras
    for foot in FEET:
        assert out.missing[J[foot]] and out.heatmaps[J[foot]].max() == 0


@pytest.fixture(scope="module")
def random_densepose_files(tmp_path_factory):
    """A randomly initialised DensePose CSE R50 (its box classifier biased to "person") in the model-zoo .pkl
    format, and the config from the installed DensePose project."""
    pytest.importorskip("detectron2", reason=f"detectron2 not installed: see {RECIPE}")
    densepose = pytest.importorskip("densepose", reason=f"detectron2's DensePose project not installed: see {RECIPE}")
    import torch
    from densepose import add_densepose_config
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    config = Path(densepose.__file__).parents[1] / "configs" / "cse" / "densepose_rcnn_R_50_FPN_s1x.yaml"
    if not config.is_file():
        pytest.skip(f"DensePose configs not next to the package ({config}); install it editable from a checkout")
    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(str(config))
    for spec in cfg.MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBEDDERS.values():
        spec.INIT_FILE = ""
    cfg.MODEL.WEIGHTS, cfg.MODEL.DEVICE = "", "cpu"
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        box = model.roi_heads.box_predictor
        box.cls_score.weight.zero_()
        box.cls_score.bias[:] = torch.tensor([5.0, -5.0])
        box.bbox_pred.weight.zero_()
        box.bbox_pred.bias.zero_()
    weights = tmp_path_factory.mktemp("dp") / "random_model_final.pkl"
    with open(weights, "wb") as fh:
        pickle.dump({"model": {k: v.numpy() for k, v in model.state_dict().items()}, "__author__": "test"}, fh)
    return config, weights


def test_densepose_plumbing_with_random_weights(random_densepose_files):
    config, weights = random_densepose_files
    t = DensePoseCSETeacher(config, weights, stride=2, device="cpu")
    assert t.version.startswith("detectron2-") and len(t.weights_digest) == 64
    img = np.random.default_rng(0).integers(0, 255, (121, 90, 3), dtype=np.uint8)
    out = t.predict([_view(img)])[0]
    assert out.cse.shape == (CSE_DIM, 61, 45) and out.cse.dtype == np.float32
    assert out.cse_mask.shape == (61, 45) and out.cse_mask.dtype == bool and out.stride == 2
    assert not out.cse[:, ~out.cse_mask].any()
    if out.extras["detected"]:  # mask cells are centred (continuous 2 j + 1, 2 i + 1) inside the box
        x0, y0, x1, y1 = out.extras["box"]
        ys, xs = np.nonzero(out.cse_mask)
        assert ((2 * xs + 1 >= x0) & (2 * xs + 1 < x1) & (2 * ys + 1 >= y0) & (2 * ys + 1 < y1)).all()


# ---------------------------------------------------------------- real weights (given as local files)

@pytest.mark.skipif(not os.environ.get("GHNERF_OPENPIFPAF_CHECKPOINT"),
                    reason=f"no openpifpaf checkpoint: set GHNERF_OPENPIFPAF_CHECKPOINT (see {RECIPE})")
def test_openpifpaf_on_the_astronaut():
    """skimage's astronaut; joint positions read off the picture by hand (as in test_mediapipe.py)."""
    pytest.importorskip("openpifpaf", reason=f"openpifpaf not installed: see {RECIPE}")
    from skimage import data

    t = build_teacher("openpifpaf", {})
    out = t.predict([_view(data.astronaut())])[0]
    assert out.extras["detected"]
    for name, ((x, y), tol) in {"Nose": ((222, 130), 15), "REye": ((204, 104), 15), "LEye": ((250, 112), 15),
                                "RShoulder": ((115, 240), 30), "LShoulder": ((305, 255), 30)}.items():
        assert np.hypot(*(out.keypoints[J[name], :2] - (x, y))) < tol, (name, out.keypoints[J[name]])
    assert out.heatmaps.shape == (25, 256, 256) and out.heatmaps.max() <= 1
    peak = np.unravel_index(out.heatmaps[J["Nose"]].argmax(), (256, 256))
    assert np.hypot(peak[1] * 2 + 0.5 - 222, peak[0] * 2 + 0.5 - 130) < 30  # coarse: the CIF stride is 8 px


@pytest.mark.skipif(not (os.environ.get("GHNERF_DENSEPOSE_CONFIG") and os.environ.get("GHNERF_DENSEPOSE_WEIGHTS")),
                    reason=f"no DensePose files: set GHNERF_DENSEPOSE_CONFIG and GHNERF_DENSEPOSE_WEIGHTS (see {RECIPE})")
def test_densepose_on_the_astronaut():
    pytest.importorskip("detectron2", reason=f"detectron2 not installed: see {RECIPE}")
    from skimage import data

    t = build_teacher("densepose-cse", {})
    out = t.predict([_view(data.astronaut())])[0]
    assert out.extras["detected"]
    assert out.cse_mask[65, 111]  # the face, pixel (222, 130)
    assert out.cse_mask.mean() > 0.1
    norms = np.linalg.norm(out.cse[:, out.cse_mask], axis=0)
    assert np.isfinite(norms).all() and norms.min() > 0
