"""`ghnerf evaluate` on a tiny trained run: metrics.json with every metric and its definition, report, pictures."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.eval.evaluate import LPIPSMetric
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig

runner = CliRunner()


def _fake_vgg16(path: Path, value: float) -> None:
    """A VGG16 state dict of a few kB that loads like the real one: each tensor is one number expanded to its
    shape (torch.save keeps the one-element storage)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16(weights=None).state_dict().items()}
    path.parent.mkdir(parents=True)
    torch.save({k: torch.full((1,), value).expand(shape) for k, shape in shapes.items()}, path)


def test_evaluate_writes_metrics_and_report(student_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache, whatever this machine has
    vgg = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    run = tmp_path / "run"
    train(preset("ghnerf-resnet18", pretrained="none"), TrainConfig(steps=2, rays=(32, 64), checkpoint_every=2),
          ExampleSet(student_root, "train"), run, log=lambda s: None)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "4"])
    assert result.exit_code == 0, result.output
    out = run / "eval_test"
    report = json.loads((out / "metrics.json").read_text())
    m = report["metrics"]
    for key in ("psnr", "ssim", "heatmap_mse", "pck", "fps", "render_seconds"):
        assert isinstance(m[key], float) and np.isfinite(m[key]), key
        assert key in report["definitions"]
    assert m["lpips"].startswith("unavailable") and str(vgg) in m["lpips"]
    assert 0 <= m["pck"] <= 1 and 0 < m["ssim"] <= 1
    assert 0 <= m["coco_ap"] <= 1 and "coco_ap" in report["definitions"]  # beside PCK, in the table too
    assert report["views"] == 4 and report["pretrained_weights"] == "none (random init)"
    assert "mpjpe_triangulated_m" in m and "mpjpe_triangulated_m" in report["definitions"]
    assert isinstance(m["mpjpe_volumetric_m"], float) and "mpjpe_volumetric_m" in report["definitions"]
    assert report["checkpoint_step"] == 2
    cpu = report["cpu"]  # the CPU policy it rendered with (ghnerf.student.cpu_policy)
    assert cpu["threads"] == torch.get_num_threads() >= 1
    assert cpu["wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "unset")
    md = (out / "report.md").read_text()
    assert "| PCK@0.2 | COCO AP |" in md and "LShoulder-RHip" in md and "none (random init)" in md
    cal = m["calibration"]
    assert len(cal["joints"]) == 10 and sum(cal["joints"]) <= m["pck_evaluated_joints"]
    assert "images/calibration.png" in md
    for name in ("000_render.png", "000_heatmaps.png", "000_skeleton.png", "calibration.png"):
        assert (out / "images" / name).is_file()
    # per-view counts add up to the pooled PCK (the benchmark's paired comparison reads them)
    pv = report["per_view"]
    assert sum(r["pck_correct"] for r in pv) / sum(r["pck_evaluated"] for r in pv) == m["pck"]
    assert report["source_views"] == 3  # as trained
    # every training camera as a source (trained with 3): the network pools over any number of views
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "2",
                                 "--source-views", "4"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["source_views"] == 4
    bad = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--source-views", "1"])
    assert bad.exit_code == 2 and "at least 2" in bad.output
    too_many = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--source-views", "5"])
    assert too_many.exit_code == 2 and "need 5 source views" in too_many.output
    # with the VGG16 weights in the cache, LPIPS is computed with them
    _fake_vgg16(vgg, 0.01)
    assert torch.all(LPIPSMetric().fn.lpips.net.slice1[0].weight == 0.01)  # the file's weights, not others
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "2"])
    assert result.exit_code == 0, result.output
    lpips = json.loads((out / "metrics.json").read_text())["metrics"]["lpips"]
    assert isinstance(lpips, float) and lpips >= 0
    assert "LPIPS: unavailable" not in (out / "report.md").read_text()


def test_evaluate_cse(student_root, tmp_path):
    from ghnerf.app.distill import DistillConfig, distill
    from storage.targets import TargetStore

    store = tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="surface-cse", frames_per_shard=2))
    run = tmp_path / "run"
    cse = TargetStore(store, "surface-cse")
    train(preset("enerf-heatmap+cse", pretrained="none"), TrainConfig(steps=2, rays=(32, 64), checkpoint_every=2),
          ExampleSet(student_root, "train", cse_store=cse), run, log=lambda s: None)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(student_root), "--max-views", "2",
                                 "--targets", str(store), "--cse-teacher", "surface-cse"])
    assert result.exit_code == 0, result.output
    m = json.loads((run / "eval_test" / "metrics.json").read_text())["metrics"]
    assert isinstance(m["cse_mse"], float) and 0 < m["cse_mse"] < 4  # unit vectors: squared distance <= 4
    assert (run / "eval_test" / "images" / "000_cse.png").is_file()
    # lineage of the report: report -> checkpoint -> shards -> teacher weights and input files
    metrics = run / "eval_test" / "metrics.json"
    report = json.loads(metrics.read_text())
    assert report["shards"] and {s["teacher"] for s in report["shards"]} == {"surface-cse"}
    assert "surface-cse" in (run / "eval_test" / "report.md").read_text()  # the report names its shards
    result = runner.invoke(app, ["lineage", str(metrics), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["report"] == str(metrics) and info["checkpoint"] == report["checkpoint"]
    assert info["metrics"]["cse_mse"] == m["cse_mse"]
    assert len(info["shards"]) == len(report["shards"]) == 2
    for sh in info["shards"]:
        assert sh["teacher"]["name"] == "surface-cse" and sh["teacher"]["weights_sha256"]
        assert any(i["path"].endswith(".jpg") for i in sh["inputs"])  # back to the input images
    tree = runner.invoke(app, ["lineage", str(metrics)])
    assert tree.exit_code == 0 and "teacher surface-cse" in tree.output and "report" in tree.output
    # a checkpoint changed after evaluation no longer matches its report
    ck = run / "checkpoints" / "latest.pt"
    ck.write_bytes(ck.read_bytes() + b"\0")
    stale = runner.invoke(app, ["lineage", str(metrics)])
    assert stale.exit_code != 0 and "changed since" in stale.output


def test_evaluate_encodes_each_frames_source_set_once(tiny_run, student_root, tmp_path, monkeypatch):
    """Evaluate encodes each (frame, ordered source views) once for the renders and the frame's volumetric joints (8
    views: 8 encodes where each render and each volume query encoded afresh: 16), and every metric is what encoding
    each view afresh gives; on_view hears of each view as it is done."""
    from ghnerf.eval.evaluate import evaluate_run, load_run_model
    from ghnerf.eval.volumetric import joints_error, volumetric_joints
    from ghnerf.eval.metrics import masked_psnr, openpose_keypoints, pck
    from ghnerf.student.inference import render_full_view
    from ghnerf.student.model import GHNeRF

    calls = []
    encode = GHNeRF.encode
    monkeypatch.setattr(GHNeRF, "encode", lambda self, batch: calls.append(1) or encode(self, batch))
    progress = []
    report = evaluate_run(tiny_run, student_root, "test", out=tmp_path / "eval", source_views=4,
                          on_view=lambda done, total: progress.append((done, total)))
    monkeypatch.undo()
    assert progress == [(done, 8) for done in range(1, 9)]  # each view as it is done
    rows = report["per_view"]
    frames = sorted({(r["subject"], r["frame_id"]) for r in rows})
    assert report["views"] == len(rows) == 8 and len(frames) == 2
    cpu = torch.device("cpu")
    model, ck = load_run_model(tiny_run / "checkpoints" / "latest.pt", cpu)
    examples = ExampleSet(student_root, "test", 4, ck["train_config"].image_scale, fewest_source_views=4)
    source_sets = {(examples.items[i][:2], tuple(examples.sources(i))) for i in range(len(examples))}
    assert len(calls) == len(source_sets) == 8
    per_frame = {}
    for i, row in enumerate(rows):
        ex = examples.example(i)
        r = render_full_view(model, ex, cpu)  # encodes its sources itself
        psnr = masked_psnr(r["rgb"].clamp(0, 1).numpy(), ex.image.numpy(), r["box"].numpy())
        assert psnr == pytest.approx(row["psnr"], abs=1e-9)
        kp = openpose_keypoints(r["heatmaps"].numpy())
        assert pck(kp[None], ex.joints2d.numpy()[None]).value == row["pck_view"]
        per_frame.setdefault(ex.key[:2], []).append((ex, kp))
    fresh = [joints_error(volumetric_joints(model, [ex for ex, _ in views], cpu), views[0][0].joints3d.numpy())
             for views in per_frame.values()]
    assert report["metrics"]["mpjpe_volumetric_m"] == pytest.approx(float(np.mean(fresh)), abs=1e-12)
