"""Training precision on the CPU (``TrainConfig.cpu_precision``): chosen once, said, recorded, and really used."""

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.precision import training_precision
from ghnerf.student.train import _example_loss, train
from ghnerf.student.train_config import TrainConfig

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("requested, device, native, autocast, said", [
    ("auto", CPU, True, "bfloat16", "natively"),
    ("auto", CPU, False, "float32", "no native bfloat16"),
    ("float32", CPU, True, "float32", "as asked"),
    ("bfloat16", CPU, True, "bfloat16", "as asked"),
    ("bfloat16", CPU, False, "bfloat16", "emulated, slower than float32"),
    ("auto", CUDA, True, "float16", "CUDA"),  # CUDA keeps its float16 autocast whatever is asked for the CPU
    ("float32", CUDA, False, "float16", "CPU training only"),
])
def test_precision_follows_the_request_and_the_cpu(requested, device, native, autocast, said):
    p = training_precision(requested, device, native=native)
    assert (p.requested, p.autocast) == (requested, autocast) and said in p.reason
    assert p.record() == {"requested": requested, "autocast": autocast, "reason": p.reason}


def _linear_output_dtypes(run) -> set:
    """The dtypes nn.Linear layers return while ``run()`` runs."""
    seen = set()

    def hook(module, args, output):
        if isinstance(module, nn.Linear):
            seen.add(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("requested", ["float32", "bfloat16"])
def test_training_runs_in_the_precision_it_records(student_root, tmp_path, requested):
    """The forward pass of a training step computes its linear layers in the recorded precision; the weights a
    checkpoint holds stay float32 either way."""
    run = tmp_path / requested
    cfg = preset("ghnerf-resnet18", pretrained="none")
    lines = []
    seen = _linear_output_dtypes(lambda: train(
        cfg, TrainConfig(steps=1, rays=(32, 64), cpu_precision=requested), ExampleSet(student_root, "train"), run,
        log=lines.append))
    assert seen == {getattr(torch, requested)}
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["precision"]["autocast"] == requested and recorded["train_config"]["cpu_precision"] == requested
    assert any(line.startswith(f"precision: {requested} (") for line in lines)
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}


def test_bfloat16_loss_is_the_float32_loss_to_bfloat16_rounding(student_root):
    """One example's loss (same weights, rays and targets) under bfloat16 autocast is the float32 loss to within
    bfloat16's rounding (8 significant bits: a few parts in a thousand through the network), not something else."""
    cfg = preset("ghnerf-resnet18", pretrained="none")
    model = GHNeRF(cfg).train()
    ex = ExampleSet(student_root, "train").example(0)
    tcfg = TrainConfig(rays=(64, 256))
    losses = {}
    for requested in ("float32", "bfloat16"):
        p = training_precision(requested, CPU, native=True)
        torch.manual_seed(0)
        loss, _ = _example_loss(model, ex, cfg, tcfg, None, torch.Generator().manual_seed(0), CPU, p)
        losses[requested] = float(loss.total.detach())
    assert losses["float32"] > 0
    assert losses["bfloat16"] != losses["float32"]  # it did compute in bfloat16
    assert abs(losses["bfloat16"] - losses["float32"]) < 0.01 * losses["float32"]


def test_the_frozen_pose_encoders_cached_maps_stack_under_autocast(student_root):
    """In training the encoder's heatmaps come from its keypoint cache: under bfloat16 autocast (where torch.stack
    refused the float16 maps it once kept) they come out float32, the same maps."""
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.14 is a core dependency; `make install` installs it")
    from ghnerf.student.encoders import PoseNetworkEncoder

    photos = ExampleSet(student_root, "train", image_scale=1.0).example(0).batch.src_images_unmasked
    enc = PoseNetworkEncoder("bundled").train()
    first = enc(photos[:1])  # caches view 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        both = enc(photos[:2])  # view 0 from the cache, view 1 new
    assert both.dtype == first.dtype == torch.float32 and both.shape[0] == 2
    torch.testing.assert_close(both[:1], first, atol=0, rtol=0)


def test_an_unknown_precision_is_one_line(student_root, tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", str(student_root), "--out", str(tmp_path / "r"), "--steps",
                                      "1", "--cpu-precision", "float16"])
    assert result.exit_code == 2 and "cpu_precision" in result.output.replace("-", "_")
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_a_loop_without_gradient_scaler_never_runs_in_float16():
    """The 2D pretraining has no gradient scaler: on CUDA it runs in float32, on the CPU in the run's precision."""
    cuda = training_precision("auto", CUDA).without_grad_scaler()
    assert cuda.autocast == "float32" and cuda.reason.endswith("float32 where no gradient scaler runs")
    cpu = training_precision("auto", CPU, native=True)
    assert cpu.without_grad_scaler() is cpu
