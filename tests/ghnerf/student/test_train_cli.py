"""`ghnerf train` from distilled shards, then `ghnerf lineage CHECKPOINT` back to the teacher's weights."""

import json

from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.app.distill import DistillConfig, distill

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
                                 str(tmp_path / "run"), "--steps", "1", "--perceptual-weight", "0.01"])
    assert result.exit_code == 2
    assert "vgg16-397923af.pth" in result.output and "--perceptual-weight 0" in result.output


def test_auto_weights_go_on_without_missing_files_and_record_it(student_root, tmp_path, monkeypatch):
    """The defaults (--pretrained auto, --perceptual-weight auto) on a machine without cached weights: one line
    naming both files, a random-init encoder and no perceptual term, recorded in run.json, the checkpoint and the
    evaluation report; an explicit --pretrained imagenet still fails naming the file."""
    from ghnerf.student.checkpoints import load_checkpoint

    torch_home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    resnet = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    vgg = torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    run = tmp_path / "run"
    base = ["train", "--config", "ghnerf-resnet18", "--data", str(student_root), "--steps", "1"]
    result = runner.invoke(app, [*base, "--out", str(run)])
    assert result.exit_code == 0, result.output
    notice = [line for line in result.output.splitlines() if line.startswith("weights: not found locally")]
    assert len(notice) == 1 and str(resnet) in notice[0] and str(vgg) in notice[0], result.output
    ck = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ck["student_config"].pretrained == "none" and ck["student_config"].losses.perceptual == 0.0
    for record in (json.loads((run / "run.json").read_text()), ck["meta"]):
        assert record["pretrained_weights"] == f"none (random init: --pretrained auto found no {resnet})"
        assert record["perceptual_loss"] == f"off: --perceptual-weight auto found no VGG16 weights at {vgg}"
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert str(resnet) in report["pretrained_weights"] and str(vgg) in report["perceptual_loss"]
    assert str(resnet) in (run / "eval_test" / "report.md").read_text()
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "run2"), "--pretrained", "imagenet"])
    assert result.exit_code == 2 and str(resnet) in result.output
    assert not (tmp_path / "run2").exists()
    # weights that appear later change nothing on --resume: the run goes on as it started (these files are not even
    # read: the encoder's weights come from the checkpoint)
    resnet.parent.mkdir(parents=True)
    resnet.write_bytes(b"not read")
    vgg.write_bytes(b"not read")
    result = runner.invoke(app, [*base[:-1], "2", "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ck["step"] == 2 and ck["student_config"].pretrained == "none"
    assert ck["meta"]["pretrained_weights"] == f"none (random init: --pretrained auto found no {resnet})"
    assert "weights: not found locally" not in result.output


def test_train_on_fused_targets_records_the_fusion(student_root, tmp_path):
    from ghnerf.student.checkpoints import load_checkpoint

    store = tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints"))
    run = tmp_path / "run"
    base = ["train", "--config", "enerf-heatmap", "--data", str(student_root), "--out", str(run), "--steps", "1",
            "--perceptual-weight", "0"]
    result = runner.invoke(app, [*base, "--targets", str(store), "--teacher", "gt-joints", "--fuse-targets"])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(run / "checkpoints" / "latest.pt")["meta"]
    assert meta["target_fusion"] == {"min_inliers": 3, "rel_threshold": 0.05}
    assert json.loads((run / "run.json").read_text())["target_fusion"]["min_inliers"] == 3
    # fusing needs a pose teacher's shards
    result = runner.invoke(app, [*base[:6], str(tmp_path / "run2"), *base[7:], "--fuse-targets"])
    assert result.exit_code == 2 and "--fuse-targets" in result.output and "--teacher" in result.output


def test_teacher_free_evidence_student_trains_with_2d_pretraining(student_root, tmp_path, monkeypatch):
    """`--pretrain-2d-steps N` runs N 2D steps (said, recorded in run.json) before the NeRF steps of the
    ghnerf-resnet18-evidence preset; asked of a config without the source heatmap head it is one error line, exit
    2, and nothing is written."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    run = tmp_path / "run"
    base = ["train", "--data", str(student_root), "--steps", "1", "--perceptual-weight", "0", "--pretrain-2d-steps",
            "5"]
    result = runner.invoke(app, [*base, "--config", "ghnerf-resnet18-evidence", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "2D pretraining step 5/5: source heatmap loss" in result.output
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["train_config"]["pretrain_2d_steps"] == 5
    assert recorded["student_config"]["source_heatmap_head"] and recorded["student_config"]["ray_evidence_samples"]
    result = runner.invoke(app, [*base, "--config", "ghnerf-resnet18", "--out", str(tmp_path / "plain")])
    assert result.exit_code == 2 and "no source heatmap head" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "plain").exists()
    # freezing the encoder after 2D pretraining asks for the pretraining: one line, exit 2, nothing written
    result = runner.invoke(app, [*base[:-2], "--config", "ghnerf-resnet18-evidence", "--freeze-pretrained-2d",
                                 "--out", str(tmp_path / "frozen")])
    assert result.exit_code == 2 and "--pretrain-2d-steps N" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "frozen").exists()


def test_train_defaults_are_the_student_benchmarks_best_recipe(student_root, tmp_path):
    """Without --config / --source-view-mix, `ghnerf train` trains the benchmark's best row (ghnerf-mediapipe with
    triangulated, lifted joint hypotheses, residual heatmap head, detached heads, on ENeRF's 2/3 source-view mix), and the
    main job, the nightly retraining's first model and the train/default deployment take that default, not their own."""
    import dataclasses
    import sys
    from pathlib import Path

    import yaml

    from ghnerf.app.pipeline import PipelineConfig
    from ghnerf.app.retrain import RetrainSpec
    from ghnerf.student.config import preset
    from ghnerf.student.train_spec import TrainSpec

    repo = Path(__file__).resolve().parents[3]
    sys.path.insert(0, str(repo))
    from benchmarks.student_quality_rows import BEST_RECIPE, DEFAULT_STEPS_ROW, RUNS

    base, _, _, fused, overrides, _ = RUNS[BEST_RECIPE]
    # the benchmark's row of train's default optimisation is the same recipe, trained with train's steps and rate
    same_base, _, _, same_fused, long_overrides, _ = RUNS[DEFAULT_STEPS_ROW]
    assert (same_base, same_fused) == (base, fused)
    assert long_overrides | {"train": overrides["train"]} == overrides
    trained = TrainSpec(data="d", out="o").train_config()
    assert long_overrides["train"] == overrides["train"] | {"steps": trained.steps, "lr": trained.lr,
                                                            "lr_halving_steps": trained.halving()}
    row16 = dataclasses.replace(preset(base), **{k: v for k, v in overrides.items() if k != "train"})
    default = TrainSpec(data="d", out="o")
    assert dataclasses.replace(default.student_config(), name=base, pretrained=row16.pretrained) == row16
    assert default.train_config().source_view_mix == overrides["train"]["source_view_mix"] == {2: 0.9, 3: 0.1}
    assert PipelineConfig().config == RetrainSpec(registry="r", data="d").config == default.config
    assert PipelineConfig().fuse_targets == fused
    (deployment,) = [d for d in yaml.safe_load((repo / "prefect.yaml").read_text())["deployments"]
                     if d["name"] == "default" and d["entrypoint"].startswith("flows/train.py")]
    assert "config" not in deployment["parameters"] and "source_view_mix" not in deployment["parameters"]
    assert deployment["parameters"]["fuse_targets"] is fused and deployment["parameters"]["teacher"] == "mediapipe"

    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(student_root), "--out", str(run), "--steps", "2",
                                 "--perceptual-weight", "0"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["student_config"]["name"] == "ghnerf-mediapipe-hypotheses"
    assert all(recorded["student_config"][k] for k in ("joint_hypotheses", "lift_missing_joints", "detach_heads"))
    assert recorded["train_config"]["source_view_mix"] == {"2": 0.9, "3": 0.1}
    # always 3 source views, as before the mix became the default
    result = runner.invoke(app, ["train", "--data", str(student_root), "--out", str(tmp_path / "three"), "--steps",
                                 "1", "--perceptual-weight", "0", "--source-view-mix", "3=1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "three" / "run.json").read_text())["train_config"]["source_view_mix"] == {"3": 1.0}
