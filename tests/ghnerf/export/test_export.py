"""`ghnerf export`: each file read the way its consumers read it (OpenPose's documented --write_json layout,
EasyMocap's OpenPose and keypoints3d loaders, pycocotools' COCO / COCOeval), and the numbers checked against
the student's own outputs (rendered through the evaluation's own example builder) or the teacher's."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.base.body25 import BODY25_NAMES
from ghnerf.data.images import pinhole
from ghnerf.eval.evaluate import load_run_model
from ghnerf.eval.volumetric import volumetric_joints
from ghnerf.eval.metrics import openpose_keypoints
from ghnerf.student.data import ExampleSet
from ghnerf.student.inference import render_full_view

runner = CliRunner()
SUBJECT = "CoreView_901"  # the test subject of student_root (1-based frame ids, "Camera (k)" folders)
COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")
# The person of OpenPose's documented --write_json example (doc/02_output.md, OpenPose >= 1.3 with person_id):
# written out here, independent of the exporter's constant.
OPENPOSE_DOC_PERSON = ("person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                       "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                       "hand_right_keypoints_3d")


def _body25_name(coco: str) -> str:
    """COCO 'left_shoulder' -> BODY_25 'LShoulder' (written out here, independent of the exporter's table)."""
    side, _, part = coco.partition("_")
    return "Nose" if coco == "nose" else {"left": "L", "right": "R"}[side] + part.capitalize()


def _export(args, out, code=0):
    result = runner.invoke(app, ["export", *args, "--out", str(out)])
    assert result.exit_code == code, result.output
    return result


def easymocap_load_openpose(path: Path) -> list[dict]:
    """What EasyMocap's ``load_openpose`` (scripts/preprocess/extract_video.py) does with a file: every key it
    reads, with its reshapes (a missing key is a KeyError there too)."""
    data = json.loads(path.read_text())
    out = []
    for i, d in enumerate(data["people"]):
        annot = {"personID": i, "keypoints": np.array(d["pose_keypoints_2d"]).reshape(-1, 3)}
        for key in ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            if len(d[key]) == 0:
                continue
            annot[key] = np.array(d[key]).reshape(-1, 3)
        out.append(annot)
    return out


def easymocap_convert(openpose_root: Path, image_root: Path) -> dict[tuple[str, str], list[dict]]:
    """EasyMocap's ``convert_from_openpose``: ``openpose/<camera>/X_keypoints.json`` is the annotation of
    ``images/<camera>/X.<ext>``; the image must exist. Returns (camera, image name) -> people."""
    annots = {}
    for cam in sorted(p.name for p in openpose_root.iterdir()):
        for name in sorted(p.name for p in (openpose_root / cam).iterdir()):
            assert name.endswith("_keypoints.json"), name
            base = name.replace("_keypoints.json", "")
            images = list((image_root / cam).glob(base + ".*"))
            assert len(images) == 1, f"no image pairs with {cam}/{name}"
            annots[(cam, images[0].name)] = easymocap_load_openpose(openpose_root / cam / name)
    return annots


def _openpose(path: Path) -> np.ndarray:
    doc = json.loads(path.read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) == 1
    assert tuple(doc["people"][0]) == OPENPOSE_DOC_PERSON  # every documented key, in OpenPose's order
    assert doc["people"][0]["person_id"] == [-1]
    assert all(doc["people"][0][k] == [] for k in OPENPOSE_DOC_PERSON[2:])  # no --face / --hand / --3d
    flat = doc["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 25 * 3
    return np.array(flat).reshape(25, 3)


def _frame(root, f=0):
    from ghnerf.data import open_dataset

    return open_dataset(root).sequence(SUBJECT).frame(f)


@pytest.fixture(scope="module")
def student_exports(tiny_run, student_root, tmp_path_factory):
    """Every format from one call; counts the views the student renders."""
    import ghnerf.student.inference as inference

    out = tmp_path_factory.mktemp("export")
    renders = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference, "render_full_view", lambda *a, **k: renders.append(1) or render_full_view(*a, **k))
        _export([str(tiny_run), "--data", str(student_root), "--subject", SUBJECT, "--frames", "0",
                 "--format", "openpose", "coco", "easymocap"], out)
    return out, len(renders)


def test_one_call_renders_each_view_once_and_lists_every_format(student_exports):
    out, renders = student_exports
    assert renders == 8  # 8 capture cameras, one frame: each rendered once for the three formats
    export = json.loads((out / "export.json").read_text())
    assert export["formats"] == ["openpose", "coco", "easymocap"]
    assert len(export["files"]["openpose"]) == 8 and len(export["files"]["easymocap"]) == 1
    assert export["views_exported"] == 8 and export["views_missing"] == 0 and export["missing_views"] == []


def test_openpose_files_pair_with_their_images_in_easymocaps_convert(student_exports, student_root):
    out, _ = student_exports
    frame = _frame(student_root)
    annots = easymocap_convert(out / "openpose", student_root / SUBJECT)
    assert sorted(annots) == sorted((v.name, v.image_path.name) for v in frame.views)
    for people in annots.values():
        assert len(people) <= 1 and all(p["keypoints"].shape == (25, 3) for p in people)


def test_openpose_and_coco_match_the_students_renders(student_exports, tiny_run, student_root):
    out, _ = student_exports
    model, ck = load_run_model(tiny_run / "checkpoints" / "latest.pt", torch.device("cpu"))
    scale = ck["train_config"].image_scale
    test = ExampleSet(student_root, "test", 3, scale)  # the evaluation's views: test cameras of the test subject
    views = [test.example(i) for i in range(len(test)) if test.items[i][1] == 0]
    assert len(views) == 4
    gt = json.loads((out / "coco" / "person_keypoints_gt.json").read_text())
    results = json.loads((out / "coco" / "person_keypoints_results.json").read_text())
    assert [c["name"] for c in gt["categories"]] == ["person"] and len(gt["images"]) == 8  # every camera
    by_camera = {im["camera"]: im for im in gt["images"]}
    result_of = {r["image_id"]: r for r in results}
    frame = _frame(student_root)
    for ex in views:
        cam = ex.key[2]
        image = frame.view(cam).image_path
        want = openpose_keypoints(render_full_view(model, ex, torch.device("cpu"))["heatmaps"].numpy())
        want[:, :2] /= scale  # full-resolution pixels
        want = np.where(np.isfinite(want), want, 0.0)
        doc = json.loads((out / "openpose" / cam / f"{image.stem}_keypoints.json").read_text())
        got = _openpose(out / "openpose" / cam / f"{image.stem}_keypoints.json") if doc["people"] else \
            np.zeros((25, 3))
        np.testing.assert_allclose(got, want, atol=1e-5)
        im = by_camera[cam]
        assert (im["height"], im["width"]) == (128, 128) and im["frame_id"] == ex.key[1]
        assert im["file_name"] == image.relative_to(student_root).as_posix()  # relative to the dataset root
        if im["id"] not in result_of:
            assert not got[:, 2].any()
            continue
        coco = np.array(result_of[im["id"]]["keypoints"]).reshape(17, 3)
        assert result_of[im["id"]]["category_id"] == 1
        for k, name in enumerate(COCO_NAMES):
            np.testing.assert_allclose(coco[k], got[BODY25_NAMES.index(_body25_name(name))])
        present = coco[:, 2] > 0
        assert result_of[im["id"]]["score"] == pytest.approx(coco[present, 2].mean())


def test_coco_pair_loads_in_pycocotools(student_exports):
    from pycocotools.coco import COCO

    out, _ = student_exports
    gt = COCO(str(out / "coco" / "person_keypoints_gt.json"))
    res = gt.loadRes(str(out / "coco" / "person_keypoints_results.json"))
    assert len(res.getAnnIds()) == len(json.loads((out / "coco" / "person_keypoints_results.json").read_text()))
    assert len(gt.getAnnIds()) == 8  # the synthetic dataset has joints and masks for every view


def test_easymocap_joints_are_the_students_openpose_keypoints_triangulated(student_exports, student_root):
    """The default 3D joints: the exported 2D keypoints of the 8 capture views (read back through EasyMocap's own
    reader), triangulated robustly with the teacher's rule; confidence the mean of the inlier views'."""
    from ghnerf.base.multiview import consistency_report

    out, _ = student_exports
    frame = _frame(student_root)
    doc = json.loads((out / "keypoints3d" / f"{frame.frame_id:06d}.json").read_text())
    # EasyMocap's read_keypoints3d: d['id'] (or 'personID'), np.array(d['keypoints3d']), (25, 4)
    assert len(doc) == 1 and doc[0]["id"] == 0
    got = np.array(doc[0]["keypoints3d"])
    assert got.shape == (25, 4)
    annots = easymocap_convert(out / "openpose", student_root / SUBJECT)
    kps = np.stack([annots[(v.name, v.image_path.name)][0]["keypoints"] if annots[(v.name, v.image_path.name)]
                    else np.zeros((25, 3)) for v in frame.views])
    kps[..., :2] = np.where(kps[..., 2:] > 0, kps[..., :2], np.nan)  # OpenPose writes a missing joint as 0, 0, 0
    rep = consistency_report([pinhole(v.camera) for v in frame.views], kps)
    ok = np.isfinite(rep.joints3d).all(1)
    assert ok.any()
    np.testing.assert_allclose(got[ok, :3], rep.joints3d[ok], atol=1e-3)  # the files keep 2D to 0.001 px
    assert (got[~ok] == 0).all() and (got[ok, 3] > 0).all()
    inlier = np.isfinite(rep.reprojection_error) & ~rep.outlier
    conf = np.where(inlier, kps[..., 2], 0).sum(0) / np.maximum(inlier.sum(0), 1)
    np.testing.assert_allclose(got[ok, 3], conf[ok], atol=1e-3)


def test_easymocap_volumetric_joints_are_the_students_volume_peaks(tiny_run, student_root, tmp_path):
    out = tmp_path / "vol"
    _export([str(tiny_run), "--data", str(student_root), "--subject", SUBJECT, "--frames", "0",
             "--format", "easymocap", "--joints3d", "volumetric"], out)
    frame_id = _frame(student_root).frame_id
    got = np.array(json.loads((out / "keypoints3d" / f"{frame_id:06d}.json").read_text())[0]["keypoints3d"])
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
    assert json.loads((out / "export.json").read_text())["spec"]["joints3d"] == "volumetric"


@pytest.fixture(scope="module")
def gt_store(student_root, tmp_path_factory):
    from ghnerf.app.distill import DistillConfig, distill

    store = tmp_path_factory.mktemp("targets") / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=2))
    return store


def test_teacher_shards_export_as_the_teacher_labelled_them(student_root, gt_store, tmp_path):
    from storage.targets import TargetStore

    teacher = TargetStore(gt_store, "gt-joints")
    args = ["--store", str(gt_store), "--teacher", "gt-joints", "--data", str(student_root), "--subject", SUBJECT]
    out = tmp_path / "all"
    _export([*args, "--format", "openpose,easymocap"], out)
    frames = [_frame(student_root, f) for f in (0, 1)]
    annots = easymocap_convert(out / "openpose", student_root / SUBJECT)
    for cam in ("Camera (1)", "Camera (4)"):
        for frame in frames:
            want = teacher.keypoints(SUBJECT, frame.frame_id, cam)
            want = np.where(np.isfinite(want), want, 0.0)
            image = frame.view(cam).image_path
            np.testing.assert_allclose(_openpose(out / "openpose" / cam / f"{image.stem}_keypoints.json"), want)
            np.testing.assert_allclose(annots[(cam, image.name)][0]["keypoints"], want)
    for frame in frames:
        got = np.array(json.loads((out / "keypoints3d" / f"{frame.frame_id:06d}.json").read_text())[0]["keypoints3d"])
        ok = got[:, 3] > 0
        assert ok.sum() >= 20  # the ground-truth teacher sees (almost) every joint
        assert np.linalg.norm(got[ok, :3] - frame.joints3d[ok], axis=1).max() < 0.03  # metres
    export = json.loads((out / "export.json").read_text())
    assert export["source"] == "teacher gt-joints" and "metres" in export["coordinates"]["3d"]
    assert export["formats"] == ["openpose", "easymocap"]


def test_cocoeval_of_the_datasets_own_joints_is_ap_1(student_root, gt_store, tmp_path):
    """The gt-joints teacher's keypoints are the dataset's joints (through the heatmap codec): AP = 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "coco"
    _export(["--format", "coco", "openpose", "--store", str(gt_store), "--teacher", "gt-joints", "--data",
             str(student_root), "--subject", SUBJECT], out)  # several values after one --format
    assert json.loads((out / "export.json").read_text())["formats"] == ["coco", "openpose"]
    gt = COCO(str(out / "coco" / "person_keypoints_gt.json"))
    assert len(gt.getAnnIds()) == 16  # 2 frames x 8 cameras
    ann = gt.loadAnns(gt.getAnnIds())[0]
    assert ann["area"] > 100 and ann["num_keypoints"] >= 10 and ann["iscrowd"] == 0
    ev = COCOeval(gt, gt.loadRes(str(out / "coco" / "person_keypoints_results.json")), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP @ OKS 0.50:0.95


def test_a_view_missing_from_the_shards_is_a_warning_or_an_error_with_strict(student_root, tmp_path):
    from ghnerf.app.distill import DistillConfig, distill

    data = tmp_path / "data"
    shutil.copytree(student_root, data)
    _frame(data).view("Camera (3)").image_path.write_bytes(b"garbage")
    store = tmp_path / "targets"
    distill(data, store, DistillConfig(teacher="gt-joints", frames_per_shard=2))
    args = ["--store", str(store), "--teacher", "gt-joints", "--data", str(data), "--subject", SUBJECT,
            "--format", "openpose"]
    result = _export(args, tmp_path / "out")
    assert "warning" in result.output and "Camera (3)" in result.output
    assert "16/16" in result.output  # progress with its total (2 frames x 8 cameras)
    export = json.loads((tmp_path / "out" / "export.json").read_text())
    assert export["views_missing"] == 1 and export["views_exported"] == 15
    (missing,) = export["missing_views"]
    assert missing["camera"] == "Camera (3)" and "not a readable image" in missing["reason"]
    result = _export([*args, "--strict"], tmp_path / "strict", code=2)
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Camera (3)" in errors[0] and "Traceback" not in result.output, result.output


def test_export_refuses_bad_input_in_one_line(tiny_run, student_root, tmp_path):
    base = ["export", "--data", str(student_root), "--subject", SUBJECT, "--out", str(tmp_path / "x")]
    cases = [([str(tiny_run), "--format", "bvh"], "unknown --format"),
             ([str(tiny_run), "--format", "coco,bvh"], "unknown --format"),
             (["--format", "coco"], "exactly one of them"),
             ([str(tiny_run), "--store", str(tmp_path), "--teacher", "gt-joints", "--format", "coco"],
              "exactly one of them"),
             ([str(tmp_path / "norun"), "--format", "coco"], "no such checkpoint")]
    for extra, message in cases:
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)


def test_format_help_lists_every_writer():
    from ghnerf.export.writers import FORMATS

    result = runner.invoke(app, ["export", "--help"], terminal_width=400)
    assert all(name in result.output for name in FORMATS)
