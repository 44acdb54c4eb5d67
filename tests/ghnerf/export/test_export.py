"""`ghnerf export` round trips: each file read back with json and the documented schema, the numbers checked
against the student's own outputs (rendered through the evaluation's own example builder) or the teacher's."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ghnerf.base.body25 import BODY25_NAMES
from ghnerf.app.cli import app
from ghnerf.eval.evaluate import load_run_model, volumetric_joints
from ghnerf.eval.metrics import openpose_keypoints
from ghnerf.student.data import ExampleSet
from ghnerf.student.train import render_full_view

runner = CliRunner()
SUBJECT = "CoreView_901"  # the test subject of student_root (1-based frame ids, "Camera (k)" folders)
COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")


def _body25_name(coco: str) -> str:
    """COCO 'left_shoulder' -> BODY_25 'LShoulder' (written out here, independent of the exporter's table)."""
    side, _, part = coco.partition("_")
    return "Nose" if coco == "nose" else {"left": "L", "right": "R"}[side] + part.capitalize()


def _export(args, out):
    result = runner.invoke(app, ["export", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _openpose(path) -> np.ndarray:
    doc = json.loads(path.read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) == 1
    flat = doc["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 25 * 3
    return np.array(flat).reshape(25, 3)


@pytest.fixture(scope="module")
def student_exports(tiny_run, student_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    for fmt in ("openpose", "coco", "easymocap"):
        _export([str(tiny_run), "--data", str(student_root), "--subject", SUBJECT, "--frames", "0", "--format", fmt],
                out)
    return out


def test_openpose_and_coco_match_the_students_renders(student_exports, tiny_run, student_root):
    model, ck = load_run_model(tiny_run / "checkpoints" / "latest.pt", torch.device("cpu"))
    scale = ck["train_config"].image_scale
    test = ExampleSet(student_root, "test", 3, scale)  # the evaluation's views: test cameras of the test subject
    views = [test.example(i) for i in range(len(test)) if test.items[i][1] == 0]
    assert len(views) == 4
    images = json.loads((student_exports / "coco" / "images.json").read_text())
    results = json.loads((student_exports / "coco" / "person_keypoints_results.json").read_text())
    assert [c["name"] for c in images["categories"]] == ["person"] and len(images["images"]) == 8  # every camera
    by_camera = {im["camera"]: im for im in images["images"]}
    result_of = {r["image_id"]: r for r in results}
    for ex in views:
        cam = ex.key[2]
        want = openpose_keypoints(render_full_view(model, ex, torch.device("cpu"))["heatmaps"].numpy())
        want[:, :2] /= scale  # full-resolution pixels
        want = np.where(np.isfinite(want), want, 0.0)
        got = _openpose(student_exports / "openpose" / cam / f"{ex.key[1]:06d}_keypoints.json")
        np.testing.assert_allclose(got, want, atol=1e-5)
        im = by_camera[cam]
        assert (im["height"], im["width"]) == (128, 128) and im["frame_id"] == ex.key[1]
        coco = np.array(result_of[im["id"]]["keypoints"]).reshape(17, 3)
        assert result_of[im["id"]]["category_id"] == 1
        for k, name in enumerate(COCO_NAMES):
            np.testing.assert_allclose(coco[k], got[BODY25_NAMES.index(_body25_name(name))])
        present = coco[:, 2] > 0
        assert result_of[im["id"]]["score"] == pytest.approx(coco[present, 2].mean())


def test_coco_results_load_in_pycocotools(student_exports):
    if importlib.util.find_spec("pycocotools") is None:
        pytest.skip("pycocotools is not installed (optional: `pip install pycocotools` to run this check)")
    from pycocotools.coco import COCO

    gt = COCO(str(student_exports / "coco" / "images.json"))
    res = gt.loadRes(str(student_exports / "coco" / "person_keypoints_results.json"))
    assert len(res.getAnnIds()) == len(json.loads((student_exports / "coco" /
                                                   "person_keypoints_results.json").read_text()))


def test_easymocap_matches_the_students_volumetric_joints(student_exports, tiny_run, student_root):
    from ghnerf.data import open_dataset

    frame_id = open_dataset(student_root).sequence(SUBJECT).frame(0).frame_id
    doc = json.loads((student_exports / "keypoints3d" / f"{frame_id:06d}.json").read_text())
    assert len(doc) == 1 and doc[0]["id"] == 0 and len(doc[0]["keypoints3d"]) == 25
    got = np.array(doc[0]["keypoints3d"])
    assert got.shape == (25, 4)
    model, ck = load_run_model(tiny_run / "checkpoints" / "latest.pt", torch.device("cpu"))
    scale = ck["train_config"].image_scale
    # every camera of the frame: the test cameras (evaluation) and the training cameras of the same subject
    views = []
    for split in ("train", "test"):
        s = ExampleSet(student_root, split, 3, scale, subjects=[SUBJECT])
        views += [s.example(i) for i in range(len(s)) if s.items[i][1] == 0]
    assert len(views) == 8
    want = volumetric_joints(model, views, torch.device("cpu"))
    want = np.where(np.isfinite(want).all(1, keepdims=True) & (want[:, 3:] > 0), want, 0.0)
    np.testing.assert_allclose(got, want, atol=1e-4)  # views summed in another order: float32 rounding


def test_teacher_shards_export_as_the_teacher_labelled_them(student_root, tmp_path):
    from storage.targets import TargetStore
    from ghnerf.app.distill import DistillConfig, distill

    store = tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=2))
    teacher = TargetStore(store, "gt-joints")
    args = ["--store", str(store), "--teacher", "gt-joints", "--data", str(student_root), "--subject", SUBJECT]
    from ghnerf.data import open_dataset

    seq = open_dataset(student_root).sequence(SUBJECT)
    frame_ids = [seq.frame(f).frame_id for f in (0, 1)]
    out = _export([*args, "--format", "openpose"], tmp_path / "op")
    for cam in ("Camera (1)", "Camera (4)"):
        for frame_id in frame_ids:
            want = teacher.keypoints(SUBJECT, frame_id, cam)
            want = np.where(np.isfinite(want), want, 0.0)
            np.testing.assert_allclose(_openpose(out / "openpose" / cam / f"{frame_id:06d}_keypoints.json"), want)
    out = _export([*args, "--format", "easymocap"], tmp_path / "em")
    for f, frame_id in enumerate(frame_ids):
        got = np.array(json.loads((out / "keypoints3d" / f"{frame_id:06d}.json").read_text())[0]["keypoints3d"])
        truth = seq.frame(f).joints3d
        ok = got[:, 3] > 0
        assert ok.sum() >= 20  # the ground-truth teacher sees (almost) every joint
        assert np.linalg.norm(got[ok, :3] - truth[ok], axis=1).max() < 0.03  # metres
    export = json.loads((out / "export.json").read_text())
    assert export["source"] == "teacher gt-joints" and "metres" in export["coordinates"]["3d"]


def test_export_refuses_bad_input_in_one_line(tiny_run, student_root, tmp_path):
    base = ["export", "--data", str(student_root), "--subject", SUBJECT, "--out", str(tmp_path / "x")]
    cases = [([str(tiny_run), "--format", "bvh"], "unknown --format"),
             (["--format", "coco"], "exactly one of them"),
             ([str(tiny_run), "--store", str(tmp_path), "--teacher", "gt-joints", "--format", "coco"],
              "exactly one of them"),
             ([str(tmp_path / "norun"), "--format", "coco"], "no such checkpoint")]
    for extra, message in cases:
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
