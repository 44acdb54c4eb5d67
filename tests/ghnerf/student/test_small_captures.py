"""Datasets the defaults used to refuse (issue 23): one subject (the test split holds out cameras instead) and few
cameras (fewer source views, down to 2); each trains through the CLI, says what it chose in one line and records it."""

import json

import pytest
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.data import open_dataset
from ghnerf.student.checkpoints import load_checkpoint
from ghnerf.student.data import ExampleSet
from ghnerf.synth.generate import SynthConfig, generate_dataset

runner = CliRunner()
TRAIN = ["train", "--config", "enerf-heatmap", "--steps", "1", "--perceptual-weight", "0"]


@pytest.fixture(scope="module")
def one_subject_root(tmp_path_factory):
    """1 subject x 2 frames x 8 cameras (enough cameras for 3 source views: only the subject count is unusual)."""
    root = tmp_path_factory.mktemp("one_subject")
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=2, cameras=8, size=96, seed=4, distortion=False),
                     root)
    return root


def _warnings(output: str, phrase: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning: ") and phrase in line]


def test_one_subject_trains_and_evaluates_on_held_out_cameras(one_subject_root, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, [*TRAIN, "--data", str(one_subject_root), "--out", str(run)])
    assert result.exit_code == 0, result.output
    said = _warnings(result.output, "1 subject, so the test split holds out cameras 1, 3, 5, 7")
    assert len(said) == 1 and str(one_subject_root) in said[0], result.output
    (subject,) = open_dataset(one_subject_root).subjects()
    expected = {"held_out": "cameras", "train_subjects": [subject], "test_subjects": [subject],
                "train_cameras": [0, 2, 4, 6], "test_cameras": [1, 3, 5, 7]}
    meta = load_checkpoint(run / "checkpoints" / "latest.pt")["meta"]
    assert json.loads((run / "run.json").read_text())["split"] == expected == meta["split"]
    assert meta["source_views_used"] == {"train": {"3": 8}, "test": {"3": 8}}  # 2 frames x 4 cameras each
    assert (run / "val" / "step_0000001.png").is_file()  # validated on a held-out camera
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(one_subject_root), "--max-views", "2"])
    assert result.exit_code == 0, result.output
    assert len(_warnings(result.output, "1 subject, so the test split holds out cameras")) == 1, result.output
    report = json.loads((run / "eval_test" / "metrics.json").read_text())
    views = open_dataset(one_subject_root).sequence(subject).frame(0).views
    assert [(r["subject"], r["camera"]) for r in report["per_view"]] == [(subject, views[1].name),
                                                                         (subject, views[3].name)]
    assert report["dataset_split"] == expected and report["metrics"]["psnr"] > 0
    assert f"- held out: cameras 1, 3, 5, 7 of {subject} (no test subject); source views per view: 3 (8 of the split's 8 views)" in (
        run / "eval_test" / "report.md").read_text()


def test_six_cameras_train_with_two_source_views(zju_root, tmp_path):
    """6 cameras: the 3 training cameras leave each training target 2 sources (3 asked), test targets keep 3."""
    run = tmp_path / "run"
    result = runner.invoke(app, [*TRAIN, "--data", str(zju_root), "--out", str(run)])
    assert result.exit_code == 0, result.output
    said = _warnings(result.output, "take 2 source views instead of 3")
    assert len(said) == 1 and "6 cameras: 9 of the 9 train views" in said[0], result.output
    used = {"train": {"2": 9}, "test": {"3": 9}}  # 1 subject per split x 3 frames x 3 cameras
    assert json.loads((run / "run.json").read_text())["source_views_used"] == used
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["meta"]["source_views_used"] == used
    train, test = ExampleSet(zju_root, "train", heatmaps="none"), ExampleSet(zju_root, "test", heatmaps="none")
    assert train.example(0).batch.src_images.shape[0] == 2 and test.example(0).batch.src_images.shape[0] == 3
    assert train.items[0][2] not in train.sources(0)


def test_fewer_than_two_candidates_is_one_line(zju_plain_root, tmp_path):
    """4 cameras: each training camera has 1 other training camera: exit 2, one line naming the dataset and the fix."""
    result = runner.invoke(app, [*TRAIN, "--data", str(zju_plain_root), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert str(zju_plain_root) in errors[0] and "need 2 source views for train camera" in errors[0]
    assert "only 1 training camera" in errors[0] and "use a capture of at least 5 cameras" in errors[0]
    assert not (tmp_path / "run").exists()
