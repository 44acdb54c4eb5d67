"""The student: head shapes for every config, offline weights, exact resume, overfitting one frame."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ghnerf.errors import ConfigError, WeightsNotFoundError
from ghnerf.student.config import FROZEN_ENCODERS, PRESETS, StudentConfig, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.train import TrainConfig, load_checkpoint, train


@pytest.fixture(scope="module")
def example(student_root):
    return ExampleSet(student_root, "train", image_scale=0.5).example(0)


@pytest.mark.parametrize("name", [f"{base}{sw}" for base in PRESETS for sw in ("", "+cse", "+coord", "+cse+coord")])
def test_head_shapes_for_every_config(name, example):
    frozen = PRESETS[name.split("+")[0]].encoder in FROZEN_ENCODERS  # bundled weights, nothing to initialise
    cfg = preset(name, pretrained="bundled" if frozen else "none")
    model = GHNeRF(cfg).eval()
    rays = [torch.tensor([[3.0, 4.0], [10.0, 12.0]]), torch.tensor([[5.0, 6.0], [20.0, 30.0], [40.0, 41.0]])]
    with torch.no_grad():
        coarse, fine = model(example.batch, rays)
    for out, r in ((coarse, 2), (fine, 3)):
        assert out.rgb.shape == (r, 3) and out.depth.shape == (r,) and out.acc.shape == (r,)
        assert (out.heatmaps is not None) == (not name.startswith("enerf+") and name != "enerf"
                                              and not name.startswith("enerf+"))
        if out.heatmaps is not None:
            assert out.heatmaps.shape == (r, 25) and 0 <= float(out.heatmaps.min()) <= float(out.heatmaps.max()) <= 1
        assert (out.cse is not None) == ("+cse" in name)
        if out.cse is not None:
            assert out.cse.shape == (r, 16)
        assert (out.coord_error is not None) == ("+coord" in name)
    assert fine.sample_depths.shape == (3, 4) and coarse.sample_depths.shape == (2, 8)
    assert cfg.levels[0].depth_planes == 32 and cfg.levels[1].depth_planes == 8


def test_unknown_configs_are_rejected():
    with pytest.raises(ConfigError, match="unknown student config"):
        preset("ghnerf-vgg")
    with pytest.raises(ConfigError, match="switch"):
        preset("ghnerf-dino+depth")
    with pytest.raises(ConfigError, match="unknown student config keys"):
        StudentConfig.from_dict({"name": "x", "bogus": 1})


def test_missing_pretrained_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    resnet18 = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        GHNeRF(preset("ghnerf-resnet18", pretrained="imagenet"))
    assert str(resnet18) in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="resnet34-b627a593.pth"):
        GHNeRF(preset("ghnerf-resnet34", pretrained="imagenet"))
    with pytest.raises(WeightsNotFoundError) as info:
        GHNeRF(preset("ghnerf-dino", pretrained="imagenet"))
    assert "models--timm--vit_small_patch8_224.dino" in str(info.value)
    # the default, auto, goes on with a random init and says which file it did not find
    assert GHNeRF(preset("ghnerf-resnet18")).pretrained_weights == (
        f"none (random init: --pretrained auto found no {resnet18})")
    assert str(tmp_path / "hf" / "hub" / "models--timm--vit_small_patch8_224.dino") in GHNeRF(
        preset("ghnerf-dino")).pretrained_weights
    from ghnerf.student.losses import PerceptualLoss
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        PerceptualLoss()
    # an explicit random init is allowed and says so
    assert GHNeRF(preset("ghnerf-resnet18", pretrained="none")).pretrained_weights == "none (random init)"


def test_resume_equals_uninterrupted_training(student_root, tmp_path):
    cfg = preset("ghnerf-resnet18", pretrained="none")
    ex = ExampleSet(student_root, "train", image_scale=0.5)
    tc = dict(rays=(32, 64), checkpoint_every=2, val_every=1000)
    straight = train(cfg, TrainConfig(steps=4, **tc), ex, tmp_path / "a", log=lambda s: None)
    train(cfg, TrainConfig(steps=2, **tc), ex, tmp_path / "b", log=lambda s: None)
    resumed = train(cfg, TrainConfig(steps=4, **tc), ex, tmp_path / "b", resume=True, log=lambda s: None)
    assert [h["step"] for h in resumed.history] == [3, 4]
    np.testing.assert_allclose([h["loss"] for h in resumed.history], [h["loss"] for h in straight.history[2:]],
                               rtol=1e-5)
    a, b = load_checkpoint(tmp_path / "a/checkpoints/latest.pt"), load_checkpoint(tmp_path / "b/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(cfg, TrainConfig(steps=4, **tc), ex, tmp_path / "c", resume=True, log=lambda s: None)


@pytest.mark.slow
def test_tiny_model_overfits_one_frame(student_root, tmp_path):
    cfg = preset("enerf-heatmap", pretrained="none")
    ex = ExampleSet(student_root, "train", image_scale=0.5)
    ex.items = ex.items[:1]  # one frame, one target view
    state = train(cfg, TrainConfig(steps=300, rays=(128, 512), lr=1e-3, checkpoint_every=300, val_every=300), ex,
                  tmp_path / "run", val_examples=ex, log=lambda s: None)
    h = state.history
    first = np.mean([r["psnr"] for r in h[:10]])
    last = np.mean([r["psnr"] for r in h[-10:]])
    assert last > first + 5.0, (first, last)
    hm_first = np.mean([r["heatmap"] for r in h[:10]])
    hm_last = np.mean([r["heatmap"] for r in h[-10:]])
    assert hm_last < 0.6 * hm_first, (hm_first, hm_last)
    assert (tmp_path / "run/val/step_0000300.png").is_file()


def test_point_queries_agree_with_rendering_inputs(example):
    """query_points reads the same field as rendering: occupancy in [0, 1), heatmaps per point."""
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none")).eval()
    pts = torch.tensor([[0.0, 0.0, 1.0], [0.1, -0.1, 0.5], [5.0, 5.0, 5.0]])
    occ, heat = model.query_points(example.batch, pts)
    assert occ.shape == (3,) and heat.shape == (3, 25)
    assert torch.all((occ >= 0) & (occ < 1)) and torch.all((heat >= 0) & (heat <= 1))
