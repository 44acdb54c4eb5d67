"""The student: head shapes for every config, offline weights, exact resume, overfitting one frame."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from ghnerf.base.errors import ConfigError, WeightsNotFoundError
from ghnerf.student.checkpoints import load_checkpoint
from ghnerf.student.config import COARSE, FROZEN_ENCODERS, PRESETS, StudentConfig, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.geometry import pixel_grid
from ghnerf.student.heads import Head
from ghnerf.student.model import GHNeRF
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig


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
    assert fine.sample_depths.shape == (3, cfg.levels[1].samples_per_ray) and coarse.sample_depths.shape == (2, 8)
    assert cfg.levels[1].samples_per_ray == (2 if name.startswith("ghnerf-mediapipe-fast") else 4)  # GHNeRF's 4
    assert cfg.levels[0].depth_planes == 32 and cfg.levels[1].depth_planes == 8


@pytest.mark.parametrize("residual", [True, False])
def test_heads_read_their_priors_once_per_ray_and_composite_as_per_sample_heads_would(residual):
    """The heads' per-ray shortcuts (the priors' columns of the first layer once per ray, the last layer after
    compositing) against the plain per-sample heads: MLP on cat([features, priors]) at every sample, activated
    with the priors (per ray when residual, else per sample), composited as sum_s w_s x_s."""
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-mediapipe-hypotheses+cse", heatmap_residual=residual)).eval()
    for head in (model.heatmap_head, model.cse_head):  # the heatmap head's last layer starts at zero
        torch.nn.init.normal_(head.net[-1].weight, std=0.5)
        torch.nn.init.normal_(head.net[-1].bias, std=0.5)
    R, S, P = 5, 4, model.num_priors
    width = model.heatmap_head.net[0].in_features - 25 * P
    feats = torch.randn(R, S, width, dtype=torch.float64)
    priors, weights = torch.rand(R, P, 25, dtype=torch.float64), torch.rand(R, S, dtype=torch.float64) / S
    model = model.double()
    with torch.no_grad():
        got = model._head_outputs((feats[..., :40], feats[..., 40:]), priors, weights)  # two parts
        x = torch.cat([feats, priors.flatten(1)[:, None].expand(R, S, -1)], dim=-1)
        hm = model.heatmap_head
        gains = (hm.prior_gain * priors).sum(1) + hm.prior_bias  # (R, 25)
        raw = hm.net(x)
        heat = (torch.sigmoid((weights[..., None] * raw).sum(1) + gains) if residual
                else (weights[..., None] * torch.sigmoid(raw + gains[:, None])).sum(1))
        cse = (weights[..., None] * model.cse_head.net(x)).sum(1)
    torch.testing.assert_close(got[Head.HEATMAPS], heat, rtol=0, atol=1e-12)
    torch.testing.assert_close(got[Head.CSE], cse, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="per-ray joint priors"):
        model._head_outputs((feats,), None, weights)


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


def test_point_queries_agree_with_rendering(example):
    """query_points reads the field rendering reads: at the rendered rays' own samples, its occupancy and
    heatmaps, composited by hand (w_i = a_i prod_{j<i} (1 - a_j)), give the rendered opacity and heatmaps.

    One coarse level rendered at its cost volume's resolution, so that a rendered pixel is a volume pixel in both
    code paths; a cost-volume network with random weights of std 0.3, so that its features vary in depth (the
    default init gives an almost constant volume, which could not tell a depth flip from the truth)."""
    level = replace(COARSE, render_scale=COARSE.volume_scale)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none", levels=(level,))).eval()
    gen = torch.Generator().manual_seed(0)
    for p in model.cost_regs.parameters():
        p.data = torch.randn(p.shape, generator=gen) * 0.3
    H, W = example.batch.image_size
    h, w = int(H * level.render_scale), int(W * level.render_scale)
    uv = pixel_grid(h, w).view(-1, 2)
    with torch.no_grad():
        out = model(example.batch, [uv])[0]
    R, S = out.sample_depths.shape
    K = example.batch.tgt_K.double().numpy() * np.array([[w / W], [h / H], [1.0]])  # this level's intrinsics
    R_w, T_w = example.batch.tgt_w2c[:3, :3].double().numpy(), example.batch.tgt_w2c[:3, 3].double().numpy()
    rays = np.linalg.solve(K, np.column_stack([uv.numpy(), np.ones(R)]).T).T  # camera rays at z = 1
    pts = (rays[:, None] * out.sample_depths.double().numpy()[..., None] - T_w) @ R_w  # R^T (x - T)
    occ, heat = model.query_points(example.batch, torch.tensor(pts.reshape(-1, 3), dtype=torch.float32))
    occ, heat = occ.view(R, S).double().numpy(), heat.view(R, S, -1).double().numpy()
    weights = occ * np.cumprod(np.column_stack([np.ones(R), 1 - occ[:, :-1]]), axis=1)
    assert np.abs(np.diff(heat, axis=1)).mean() > 0.01, "the field should vary along the rays"
    np.testing.assert_allclose(out.acc.numpy(), weights.sum(1), atol=1e-4)  # float32 sums of 8 samples
    np.testing.assert_allclose(out.heatmaps.numpy(), (weights[..., None] * heat).sum(1), atol=1e-4)


def test_views_sharing_their_sources_can_share_one_encoding(example):
    """render_full_view with the encoding of an earlier view of the same source images (FrameEncodings, as render,
    evaluate and export use it) renders what encoding afresh renders; a different target pose changes the render."""
    from ghnerf.student.inference import FrameEncodings, render_full_view

    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none"))
    encodings = FrameEncodings(model, torch.device("cpu"))
    first = render_full_view(model, example, torch.device("cpu"), encoding=encodings.get(0, [1, 2], example.batch))
    w2c = example.batch.tgt_w2c.clone()
    w2c[0, 3] += 0.05  # the target camera moved 5 cm sideways; same sources
    moved = replace(example, batch=replace(example.batch, tgt_w2c=w2c))
    fresh = render_full_view(model, moved, torch.device("cpu"))
    reused = render_full_view(model, moved, torch.device("cpu"), encoding=encodings.get(0, [1, 2], moved.batch))
    assert encodings.encoded == 1
    torch.testing.assert_close(reused["rgb"], fresh["rgb"], atol=0, rtol=0)
    torch.testing.assert_close(reused["heatmaps"], fresh["heatmaps"], atol=0, rtol=0)
    assert (fresh["rgb"] - first["rgb"]).abs().max() > 1e-3


def test_frame_encodings_encode_a_frames_source_set_once(example):
    """FrameEncodings encodes (frame, sources) once: the same sources again reuse it, other sources of the frame get
    their own, the least recently used beyond ``keep`` is dropped, and so is everything at another frame; what it
    gives is model.encode's."""
    from ghnerf.student.inference import FrameEncodings

    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none"))
    encodings = FrameEncodings(model, torch.device("cpu"), keep=2)
    a = encodings.get(0, [1, 2], example.batch)
    assert encodings.get(0, (1, 2), example.batch) is a and encodings.encoded == 1
    b = encodings.get(0, [1, 3], example.batch)
    assert b is not a and encodings.encoded == 2 and encodings.get(0, [1, 3], example.batch) is b
    assert encodings.get(0, [2, 1], example.batch) is not a and encodings.encoded == 3  # another order: its own
    assert encodings.get(0, [1, 3], example.batch) is b and encodings.encoded == 3  # kept: used after (1, 2)
    assert encodings.get(0, [1, 2], example.batch) is not a and encodings.encoded == 4  # dropped (keep=2)
    assert encodings.get(1, [1, 2], example.batch) is not a and encodings.encoded == 5
    assert encodings.get(1, [1, 2], example.batch) is encodings.get(1, [1, 2], example.batch)
    assert encodings.encoded == 5
    assert encodings.get(0, [1, 3], example.batch) is not b and encodings.encoded == 6  # frame 0 was dropped
    with torch.no_grad():
        want = model.eval().encode(example.batch)
    for got, ref in zip(a.fpn + (a.human,), want.fpn + (want.human,), strict=True):
        torch.testing.assert_close(got, ref, atol=0, rtol=0)


def test_query_points_computes_only_the_heatmaps(example, monkeypatch):
    """query_points returns occupancy and heatmaps: a CSE head beside them is not run there (rendering runs it)."""
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18+cse", pretrained="none")).eval()
    calls = []
    hidden = model.cse_head.hidden
    monkeypatch.setattr(model.cse_head, "hidden", lambda *a: calls.append(1) or hidden(*a))
    occ, heat = model.query_points(example.batch, torch.zeros(5, 3))
    assert occ.shape == (5,) and heat.shape == (5, model.cfg.num_joints) and not calls
    with torch.no_grad():
        out = model(example.batch, [example.batch.tgt_K.new_zeros((0, 2)), torch.tensor([[3.0, 4.0]])])[-1]
    assert out.heads[Head.CSE].shape == (1, model.cfg.cse_dim) and calls
