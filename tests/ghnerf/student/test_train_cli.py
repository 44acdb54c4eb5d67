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
    """Without --config / --source-view-mix / --pretrain-2d-steps, `ghnerf train` trains the benchmark's best row
    (ghnerf-resnet18-mediapipe-hypotheses: its own pose network pretrained in 2D on warped views and frozen, its
    keypoints triangulated with MediaPipe's, on ENeRF's 2/3 source-view mix), with the optimisation of the row that
    measures it as train trains it; the train/default deployment takes that default, while the main job and the
    nightly retraining's first model train the best recipe without 2D pretraining (their budgets are minutes)."""
    import dataclasses
    import sys
    from pathlib import Path

    import yaml

    from ghnerf.app.pipeline import PipelineConfig
    from ghnerf.app.retrain import RetrainSpec
    from ghnerf.student.config import preset
    from ghnerf.student.train_spec import QUICK_CONFIG, TrainSpec

    repo = Path(__file__).resolve().parents[3]
    sys.path.insert(0, str(repo))
    from benchmarks.student_quality_rows import BEST_RECIPE, DEFAULT_STEPS_ROW, QUICK_RECIPE, RUNS, TEACHER_FREE_RECIPE

    def row_config(index):
        base, _, _, fused, overrides, _ = RUNS[index]
        return dataclasses.replace(preset(base), **{k: v for k, v in overrides.items() if k != "train"}), fused

    (best, fused), (same, same_fused) = row_config(BEST_RECIPE), row_config(DEFAULT_STEPS_ROW)
    # the benchmark's row of train's default optimisation is the same student, trained with train's steps and rate
    assert dataclasses.replace(same, name=best.name) == best and same_fused == fused
    default = TrainSpec(data="d", out="o")
    assert dataclasses.replace(default.student_config(), name=best.name, pretrained=best.pretrained) == best
    trained, row_train = default.train_config(), RUNS[DEFAULT_STEPS_ROW][4]["train"]
    assert row_train == RUNS[BEST_RECIPE][4]["train"] | {"steps": trained.steps, "lr": trained.lr,
                                                         "lr_halving_steps": trained.halving()}

    def as_trained(tcfg, keys):
        return {k: tcfg.halving() if k == "lr_halving_steps" else getattr(tcfg, k) for k in keys}

    assert as_trained(trained, row_train) == row_train
    # the teacher-free row the README reports is `ghnerf train --config ghnerf-resnet18-hypotheses`, other defaults
    free, _ = row_config(TEACHER_FREE_RECIPE)
    teacher_free = TrainSpec(data="d", out="o", config=free.name)
    assert dataclasses.replace(teacher_free.student_config(), pretrained=free.pretrained) == free
    free_train = RUNS[TEACHER_FREE_RECIPE][4]["train"]
    assert as_trained(teacher_free.train_config(), free_train) == free_train
    assert trained.pretrain_2d_steps > 0 and trained.freeze_pretrained_2d and trained.pretrain_2d_augment
    assert trained.source_view_mix == {2: 0.9, 3: 0.1}
    # the quick recipe: the benchmark's earlier best row, which has no pose network of its own to pretrain
    quick = TrainSpec(data="d", out="o", config=QUICK_CONFIG)
    row22, _ = row_config(QUICK_RECIPE)
    assert dataclasses.replace(quick.student_config(), pretrained=row22.pretrained) == row22
    assert not quick.student_config().has_own_pose_network and quick.train_config().pretrain_2d_steps == 0
    assert PipelineConfig().config == RetrainSpec(registry="r", data="d").config == QUICK_CONFIG
    assert PipelineConfig().fuse_targets == fused
    (deployment,) = [d for d in yaml.safe_load((repo / "prefect.yaml").read_text())["deployments"]
                     if d["name"] == "default" and d["entrypoint"].startswith("flows/train.py")]
    assert not {"config", "source_view_mix", "pretrain_2d_steps", "freeze_pretrained_2d"} & set(deployment["parameters"])
    assert deployment["parameters"]["fuse_targets"] is fused and deployment["parameters"]["teacher"] == "mediapipe"

    run = tmp_path / "run"  # the default, its 2D pretraining shortened (frozen after it: the default too)
    result = runner.invoke(app, ["train", "--data", str(student_root), "--out", str(run), "--steps", "2",
                                 "--perceptual-weight", "0", "--pretrain-2d-steps", "2"])
    assert result.exit_code == 0, result.output
    assert "2D pretraining step 2/2" in result.output
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["student_config"]["name"] == "ghnerf-resnet18-mediapipe-hypotheses"
    assert recorded["student_config"]["hypothesis_teacher"] == "mediapipe"
    assert all(recorded["student_config"][k] for k in ("joint_hypotheses", "lift_missing_joints", "detach_heads",
                                                       "source_heatmap_head"))
    assert recorded["train_config"]["source_view_mix"] == {"2": 0.9, "3": 0.1}
    assert recorded["train_config"]["pretrain_2d_steps"] == 2 and recorded["train_config"]["freeze_pretrained_2d"]
    # always 3 source views, as before the mix became the default; the quick recipe has nothing to pretrain in 2D
    result = runner.invoke(app, ["train", "--data", str(student_root), "--out", str(tmp_path / "three"), "--steps",
                                 "1", "--perceptual-weight", "0", "--source-view-mix", "3=1", "--config", QUICK_CONFIG])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "three" / "run.json").read_text())["train_config"]
    assert recorded["source_view_mix"] == {"3": 1.0}
    assert recorded["pretrain_2d_steps"] == 0 and not recorded["freeze_pretrained_2d"]


def test_train_bars_show_the_2d_pretraining_before_the_steps():
    """`ghnerf train`'s bars: a 2D pretraining bar appears at its first step (its own count and total), then the
    training bar; a run without 2D pretraining shows the training bar alone."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from ghnerf.app.cli import TrainBars

    with Progress(console=Console(file=io.StringIO())) as progress:
        bars = TrainBars(progress, steps=3)
        assert not progress.tasks
        for step in (1, 2):
            bars.pretrain_step(step, 2, {"loss": 0.01, "lr": 1e-3, "it_s": 5.0})
        bars.step(1, {"loss": 0.2, "psnr": 12.0, "lr": 5e-4, "it_s": 2.0})
        assert [(t.description, t.completed, t.total) for t in progress.tasks] == [("2D pretraining", 2, 2),
                                                                                   ("train", 1, 3)]
        assert "source heatmap loss 0.01000" in progress.tasks[0].fields["info"]
    with Progress(console=Console(file=io.StringIO())) as progress:
        TrainBars(progress, steps=3).step(3, {"loss": 0.2, "psnr": 12.0, "lr": 5e-4, "it_s": 2.0})
        assert [(t.description, t.completed) for t in progress.tasks] == [("train", 3)]
