"""The evaluation artifact's student-vs-teacher section: its Markdown alone, and the evaluate flow with a teacher."""

import json

import numpy as np

from flows.artifacts import disagreement_markdown
from ghnerf.base.fileio import write_image


def test_disagreement_section_has_counts_and_embedded_pictures(tmp_path):
    picture = tmp_path / "images" / "disagreement_00.png"
    write_image(picture, np.full((64, 192, 3), 200, np.uint8))
    summary = {"teacher": "mediapipe", "views": 3, "disagreements": 7, "alpha": 0.2,
               "verdicts": {"student": 4, "teacher": 1, "both": 0, "neither": 2, "undecided": 0},
               "per_joint": {"RWrist": 3, "LAnkle": 2}, "pictures": [str(picture)],
               "path": str(tmp_path / "disagreement.json")}
    md = "\n".join(disagreement_markdown(summary))
    assert "Student vs teacher mediapipe" in md and "7 disagreements over 3 views" in md
    assert "| 4 | 1 | 0 | 2 | 0 |" in md and "RWrist (3), LAnkle (2)" in md
    assert md.count("data:image/png;base64,") == 1 and str(tmp_path / "disagreement.json") in md
    assert disagreement_markdown(None) == []


def test_evaluate_flow_with_a_teacher_publishes_the_disagreement(prefect_api, student_root, tmp_path):
    from flows.evaluate import evaluate_flow
    from flows.runs import artifacts_of
    from ghnerf.student.config import preset
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import TrainConfig, train
    from ghnerf.app.distill import DistillConfig, distill

    run, store = tmp_path / "run", tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints"))
    train(preset("ghnerf-resnet18", pretrained="none"), TrainConfig(steps=2, rays=(32, 64), checkpoint_every=2),
          ExampleSet(student_root, "train"), run, log=lambda s: None)
    state = evaluate_flow(run=str(run), data=str(student_root), max_views=2, targets=str(store), teacher="gt-joints",
                          return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    saved = json.loads((run / "eval_test" / "disagreement.json").read_text())
    assert result["disagreement"]["disagreements"] == sum(len(v["disagreements"]) for v in saved["views"])
    report = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}["evaluation-ghnerf-resnet18"]
    assert "Student vs teacher gt-joints" in report.data
    assert f"{result['disagreement']['disagreements']} disagreements over 2 views" in report.data
