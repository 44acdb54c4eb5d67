"""`ghnerf train` from distilled shards, then `ghnerf lineage CHECKPOINT` back to the teacher's weights."""

import json

from typer.testing import CliRunner

from ghnerf.cli import app
from teachers.distill import DistillConfig, distill

runner = CliRunner()


def test_train_from_teacher_shards_and_checkpoint_lineage(student_root, tmp_path):
    store = tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=2))
    run = tmp_path / "run"
    args = ["train", "--config", "enerf-heatmap", "--data", str(student_root), "--out", str(run), "--targets",
            str(store), "--teacher", "gt-joints", "--steps", "2", "--perceptual-weight", "0",
            "--checkpoint-every", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    ck = run / "checkpoints" / "latest.pt"
    assert ck.is_file() and (run / "val" / "step_0000002.png").is_file()
    result = runner.invoke(app, ["lineage", str(ck), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["step"] == 2 and info["config"] == "enerf-heatmap"
    assert len(info["shards"]) == 2  # the training subject's shard plus the other subject's (same teacher store)
    assert {s["teacher"]["name"] for s in info["shards"]} == {"gt-joints"}
    assert all(s["teacher"]["weights_sha256"] == "none" and s["inputs"] for s in info["shards"])
    # resume continues from step 2
    result = runner.invoke(app, [*args[:-4], "--steps", "3", "--resume", "--perceptual-weight", "0",
                                 "--checkpoint-every", "2"])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output


def test_train_reports_missing_vgg_weights(student_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = runner.invoke(app, ["train", "--config", "enerf", "--data", str(student_root), "--out",
                                 str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 2
    assert "vgg16-397923af.pth" in result.output and "--perceptual-weight 0" in result.output
