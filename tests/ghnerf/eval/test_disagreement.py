"""The student-vs-teacher disagreement report on planted cases, and through `ghnerf evaluate --teacher`."""

import json
from types import SimpleNamespace

import numpy as np
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.app.distill import DistillConfig, distill
from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.eval.teacher_comparison import LIFTED, ON_VIEW, STUDENT, TRIANGULATED
from ghnerf.eval.disagreement import compare_view, multiview_reference, summarise, teacher_and_reference
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig
from tests.ghnerf.eval.test_triangulated_teacher import X, planted, ring

runner = CliRunner()


def skeleton() -> np.ndarray:
    """(25, 3) ground truth with a 100 px torso (PCK@0.2 radius 20 px)."""
    kp = np.ones((NUM_JOINTS, 3))
    kp[:, 0] = 100.0 + np.arange(NUM_JOINTS) * 6.0
    kp[:, 1] = 200.0
    kp[J["LShoulder"], :2] = (100.0, 100.0)
    kp[J["RHip"], :2] = (160.0, 180.0)
    return kp


def test_planted_disagreements_get_the_verdict_the_ground_truth_supports():
    gt = skeleton()
    student, teacher = gt.copy(), gt.copy()
    teacher[J["RWrist"], 0] += 40.0  # teacher wrong
    student[J["LWrist"], 1] += 40.0  # student wrong
    student[J["RKnee"], 0] -= 12.0  # 24 px apart, both within 20 px of the truth
    teacher[J["RKnee"], 0] += 12.0
    student[J["LKnee"], 0] += 50.0  # both wrong
    teacher[J["LKnee"], 0] += 100.0
    teacher[J["Nose"]] = (np.nan, np.nan, 0.0)  # only the student gives it, correctly
    gt[J["REar"], 2] = 0.0  # no reference
    teacher[J["REar"], 1] += 40.0
    student[J["LEye"], 0] += 19.0  # within the radius of each other: agreement, not reported
    rows = compare_view(student, teacher, gt)
    verdicts = {r["joint"]: r["verdict"] for r in rows}
    assert verdicts == {"RWrist": "student", "LWrist": "teacher", "RKnee": "both", "LKnee": "neither",
                        "Nose": "student", "REar": "undecided"}
    by_joint = {r["joint"]: r for r in rows}
    assert by_joint["RWrist"]["distance_px"] == 40.0 and by_joint["RWrist"]["radius_px"] == 20.0
    assert by_joint["Nose"]["teacher"] is None and by_joint["Nose"]["distance_px"] is None
    assert by_joint["REar"]["reference"] is None
    assert by_joint["LKnee"]["student"] == [float(gt[J["LKnee"], 0] + 50.0), 200.0]
    s = summarise([{"disagreements": rows}, {"disagreements": []}])
    assert s["views"] == 2 and s["disagreements"] == 6
    assert s["verdicts"] == {"student": 2, "teacher": 1, "both": 1, "neither": 1, "undecided": 1}


def test_without_ground_truth_the_other_views_decide():
    cams = ring()
    kp = planted(cams, X)
    kp[2, J["RWrist"], :2] += 40.0  # the teacher's label error in the target view
    kp[5, J["LAnkle"], :2] += 60.0  # and one in another view, outvoted there
    ref = multiview_reference(cams, kp, 2)
    exact = cams[2].project(X, distort=False)
    np.testing.assert_allclose(ref[:, :2], exact, atol=1e-4)
    student = kp[2].copy()
    student[:, :2] = exact  # a student that fixed the label
    rows = compare_view(student, kp[2], ref)
    assert [(r["joint"], r["verdict"]) for r in rows] == [("RWrist", "student")]


def test_a_view_without_ground_truth_is_judged_by_the_teachers_other_views():
    cams = ring()
    kp = planted(cams, X)
    kp[2, J["RWrist"], :2] += 40.0
    views = [SimpleNamespace(name=f"cam{c}", camera=cam, joints2d=None) for c, cam in enumerate(cams)]
    frame = SimpleNamespace(frame_id=7, views=views)
    examples = SimpleNamespace(items=[("s", 0, 2)], scale=0.5,
                               reader=SimpleNamespace(sequence=lambda s: SimpleNamespace(frame=lambda f: frame)))
    store = SimpleNamespace(keypoints=lambda s, f, c: kp[int(c[3:])].copy())
    teacher, reference, kind = teacher_and_reference(examples, 0, store)
    assert kind == "multi-view"
    np.testing.assert_allclose(teacher[:, :2], kp[2, :, :2] * 0.5)
    np.testing.assert_allclose(reference[:, :2], cams[2].project(X, distort=False) * 0.5, atol=1e-4)


def test_evaluate_with_a_teacher_writes_the_disagreement_report(student_root, tmp_path):
    run, store = tmp_path / "run", tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints"))
    train(preset("ghnerf-resnet18", pretrained="none"), TrainConfig(steps=2, rays=(32, 64), checkpoint_every=2),
          ExampleSet(student_root, "train"), run, log=lambda s: None)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "3",
                                 "--targets", str(store), "--teacher", "gt-joints"])
    assert result.exit_code == 0, result.output
    out = run / "eval_test"
    report = json.loads((out / "metrics.json").read_text())
    saved = json.loads((out / "disagreement.json").read_text())
    d = report["disagreement"]
    assert d["teacher"] == "gt-joints" and d["views"] == 3 == len(saved["views"])
    assert d["disagreements"] == sum(len(v["disagreements"]) for v in saved["views"])
    assert sum(d["verdicts"].values()) == d["disagreements"]
    assert all(v["reference"] == "ground truth" for v in saved["views"])
    # the student's keypoints in metrics.json are the ones compared
    for v, row in zip(saved["views"], report["per_view"]):
        kp = np.array(row["keypoints"], dtype=float)
        for r in v["disagreements"]:
            if r["student"] is not None:
                np.testing.assert_allclose(r["student"], kp[J[r["joint"]], :2], atol=1e-3)
    # an untrained student disagrees with the (ground-truth) teacher, which is right every time
    assert d["disagreements"] > 0 and d["verdicts"]["student"] == 0
    assert len(d["pictures"]) == min(4, sum(bool(v["disagreements"]) for v in saved["views"]))
    assert all((out / "images" / p.split("/")[-1]).is_file() for p in d["pictures"])
    md = (out / "report.md").read_text()
    assert "Student vs teacher gt-joints" in md and "disagreement_00.png" in md
    # beside it, the teacher and the triangulated teacher on the same views: the student's row is its metrics
    c = report["teacher_comparison"]
    assert c["teacher"] == "gt-joints" and c["views"] == 3 and [r["model"] for r in c["rows"]] == [
        STUDENT, ON_VIEW, TRIANGULATED, LIFTED]
    assert c["rows"][3]["pck"] >= c["rows"][2]["pck"]  # lifting only adds joints the triangulation left missing
    assert c["rows"][0]["pck"] == report["metrics"]["pck"] and c["rows"][0]["coco_ap"] == report["metrics"]["coco_ap"]
    assert c["rows"][1]["pck"] == 1.0 and c["rows"][1]["coco_ap"] == 1.0  # the ground-truth teacher on the view
    d1 = c["rows"][1]["student_minus_this"]
    assert d1["difference"] == report["metrics"]["pck"] - 1.0 and d1["low"] <= d1["difference"] <= d1["high"]
    assert "Student beside its teacher (gt-joints, the same 3 views)" in md
    # in 3D, against the triangulations on the joints both give: the exact teacher's source views triangulate to
    # the true joints, so its rows' own MPJPE is ~0 and the untrained student is the worse side
    for row in c["rows"][2:]:
        m = row["student_minus_this_mpjpe"]
        assert m["rival_m"] < 0.01 and m["difference"] > 0
        assert abs(m["difference"] - (m["student_m"] - m["rival_m"])) < 1e-9
    assert "MPJPE m on the joints both give" in md


def test_evaluate_teacher_without_targets_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--data", str(tmp_path), "--teacher", "mediapipe"])
    assert result.exit_code == 2
    assert "--targets" in result.output and "Traceback" not in result.output
