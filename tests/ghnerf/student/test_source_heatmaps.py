"""The source heatmap head: 2D targets of the source views, their maps, and a loss that trains the encoder."""

import inspect
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ghnerf.base.errors import ConfigError
from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.student.config import LossWeights, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.precision import training_precision
from ghnerf.student.train import _example_loss
from ghnerf.student.train_config import TrainConfig

FLOAT32 = training_precision("float32", torch.device("cpu"))  # the checks below are float32 arithmetic


@pytest.fixture(scope="module")
def example_set(student_root):
    return ExampleSet(student_root, "train", image_scale=0.5, source_targets=True)


def test_source_targets_peak_at_each_source_views_joints(example_set):
    ex = example_set.example(0)
    subject, f, cam = example_set.items[0]
    frame = example_set.reader.sequence(subject).frame(f)
    cams = [v.camera for v in frame.views]
    from ghnerf.data import nearest_source_views

    srcs = nearest_source_views(cams, cam, example_set.source_cameras, 3)
    assert ex.src_heatmaps.shape == (3, 25, *ex.image.shape[:2]) and ex.src_joint_valid.shape == (3, 25)
    codec = HeatmapCodec(stride=1, sigma=3.5)
    for k, s in enumerate(srcs):
        gt = frame.views[s].joints2d.copy()
        gt[:, :2] *= 0.5
        present = gt[:, 2] > 0
        assert present.sum() >= 20
        np.testing.assert_array_equal(ex.src_joint_valid[k].numpy(), present)
        peaks = codec.decode(ex.src_heatmaps[k].numpy())
        np.testing.assert_allclose(peaks[present, :2], gt[present, :2], atol=0.3)


def test_source_heatmaps_shape_and_the_configs_that_may_have_them(example_set):
    ex = example_set.example(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True)).eval()
    with torch.no_grad():
        levels, src = model(ex.batch, [torch.zeros(0, 2), torch.tensor([[5.0, 6.0]])], with_source_heatmaps=True)
    H, W = ex.image.shape[:2]
    assert src.shape == (3, 25, H // 2, W // 2) and 0 <= float(src.min()) <= float(src.max()) <= 1
    assert levels[0] is None and levels[1].rgb.shape == (1, 3)
    with pytest.raises(ConfigError, match="source heatmap head needs"):
        preset("enerf-heatmap", source_heatmap_head=True)
    with pytest.raises(ValueError, match="no source heatmap head"):
        GHNeRF(preset("ghnerf-resnet18", pretrained="none"))(ex.batch, with_source_heatmaps=True)


def test_the_source_term_alone_trains_the_encoder(example_set):
    ex = example_set.example(0)
    only_source = LossWeights(color=0.0, perceptual=0.0, heatmap=0.0, cse=0.0, coord=0.0, source_heatmap=1.0)
    cfg = preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True, losses=only_source)
    torch.manual_seed(0)
    model = GHNeRF(cfg)
    loss, _ = _example_loss(model, ex, cfg, TrainConfig(rays=(8, 16)), None, torch.Generator().manual_seed(0),
                            torch.device("cpu"), FLOAT32)
    assert set(loss.terms) == {"color", "source_heatmap"}  # colour is always reported
    # the term equals the masked MSE against the area-downsampled targets, computed here independently
    with torch.no_grad():
        pred = torch.sigmoid(model.source_heatmap_head(model.encode(ex.batch).human))
    target = torch.nn.functional.interpolate(ex.src_heatmaps, size=pred.shape[-2:], mode="area")
    valid = ex.src_joint_valid[:, :, None, None].expand_as(pred)
    expected = float(((pred - target) ** 2)[valid].mean())
    assert loss.terms["source_heatmap"] == pytest.approx(expected, rel=1e-4)
    loss.total.backward()
    assert model.encoder.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert model.heatmap_head.net[0].weight.grad is None or model.heatmap_head.net[0].weight.grad.abs().sum() == 0
    # without the head the term is absent
    plain = replace(cfg, source_heatmap_head=False)
    loss2, _ = _example_loss(GHNeRF(plain), ex, plain, TrainConfig(rays=(8, 16)), None,
                             torch.Generator().manual_seed(0), torch.device("cpu"), FLOAT32)
    assert "source_heatmap" not in loss2.terms


def test_a_source_head_without_source_targets_is_refused(student_root, tmp_path):
    from ghnerf.student.train import train

    plain = ExampleSet(student_root, "train", image_scale=0.5)
    assert plain.example(0).src_heatmaps is None  # not computed unless asked for
    cfg = preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True)
    with pytest.raises(ConfigError, match="source_targets=True"):
        train(cfg, TrainConfig(steps=1), plain, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="need heatmap targets"):
        ExampleSet(student_root, "train", heatmaps="none", source_targets=True)


def test_teacher_free_ray_evidence_reads_the_students_own_source_heatmaps(example_set):
    """Without a pose network, the ray evidence pools the source heatmap head's maps along each ray; the untrained
    student shows acc * sigmoid(8 E - 4) (its head MLP starts at zero) and the evidence trains the encoder."""
    from ghnerf.student.geometry import pixel_grid
    from ghnerf.student.model import EVIDENCE_BIAS, EVIDENCE_GAIN, SOURCE_HEATMAP_BIAS
    from ghnerf.student.ray_evidence import ray_joint_evidence

    with pytest.raises(ConfigError, match="ray evidence"):
        preset("ghnerf-resnet18", pretrained="none", ray_evidence_samples=8)  # no heatmaps to read
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True, ray_evidence_samples=8))
    ex = example_set.example(0)
    b = ex.batch
    H, W = b.image_size
    uv = pixel_grid(H, W).view(-1, 2)[::53]
    model.eval()
    enc = model.encode(b)
    torch.testing.assert_close(enc.pose_heatmaps, torch.sigmoid(model.source_heatmap_head(enc.human)))
    assert float(enc.pose_heatmaps.mean()) < 0.1  # the head starts near empty maps
    torch.testing.assert_close(model.source_heatmap_head.bias, torch.full((25,), SOURCE_HEATMAP_BIAS))
    out = model(b, [uv.new_zeros((0, 2)), uv], encoding=enc)[-1]
    E = ray_joint_evidence(uv, b.tgt_K, b.tgt_w2c, b.near_far, enc.pose_heatmaps, b.src_K, b.src_w2c, (H, W), 8)
    torch.testing.assert_close(out.heatmaps, out.acc[:, None] * torch.sigmoid(EVIDENCE_GAIN * E + EVIDENCE_BIAS),
                               atol=1e-5, rtol=1e-4)
    out.heatmaps.sum().backward()
    assert model.encoder.layer1[0].conv1.weight.grad.abs().sum() > 0  # through the evidence
    _, src = model(b, [uv.new_zeros((0, 2)), uv[:4]], with_source_heatmaps=True)
    torch.testing.assert_close(src, model.encode(b).pose_heatmaps)


def test_2d_pretraining_lowers_the_source_loss_and_touches_only_the_encoder_path(example_set):
    from ghnerf.student.pretrain_2d import pretrain_source_heatmaps

    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lines = []
    losses = pretrain_source_heatmaps(model, example_set, 40, 1e-3, torch.Generator().manual_seed(0),
                                      torch.device("cpu"), lines.append)
    assert len(losses) == 40 and len(lines) == 5 and "2D pretraining step 40/40" in lines[-1]
    # the rate falls from 1e-3 to 0 on a cosine: step s (1-based) runs at 1e-3 (1 + cos(pi (s - 1) / 40)) / 2
    for line, s in zip(lines, (8, 16, 24, 32, 40)):
        assert line.endswith(f"lr {1e-3 * (1 + math.cos(math.pi * (s - 1) / 40)) / 2:.2e}"), line
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    changed = {k.split(".")[0] for k, v in model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])}
    assert changed == {"encoder", "human_proj", "source_heatmap_head"}
    with pytest.raises(ConfigError, match="source_heatmap_head=True"):
        pretrain_source_heatmaps(GHNeRF(preset("ghnerf-resnet18", pretrained="none")), example_set, 1, 1e-3,
                                 torch.Generator(), torch.device("cpu"))
    with pytest.raises(ConfigError, match="source_targets=True"):
        pretrain_source_heatmaps(model, ExampleSet(example_set.reader.root, "train", image_scale=0.5), 1, 1e-3,
                                 torch.Generator(), torch.device("cpu"))


def test_a_frozen_human_path_gets_no_gradient_and_keeps_its_batchnorm_statistics(example_set):
    """freeze_human_path: the encoder, projection and source head get no gradient and stay in eval mode under
    train() (BatchNorm statistics unchanged by a training forward), while the rest of the network still learns."""
    torch.manual_seed(0)
    cfg = preset("ghnerf-resnet18-evidence", pretrained="none")
    model = GHNeRF(cfg).train()
    model.freeze_human_path()
    model.train()
    assert model.training and not model.encoder.training and not model.encoder.stem[1].training
    stats = model.encoder.stem[1].running_mean.clone()
    loss, _ = _example_loss(model, example_set.example(0), cfg, TrainConfig(rays=(8, 16)), None,
                            torch.Generator().manual_seed(0), torch.device("cpu"), FLOAT32)
    loss.total.backward()
    frozen = [p for m in (model.encoder, model.human_proj, model.source_heatmap_head) for p in m.parameters()]
    assert frozen and all(p.grad is None and not p.requires_grad for p in frozen)
    torch.testing.assert_close(model.encoder.stem[1].running_mean, stats, rtol=0, atol=0)
    learning = [p for m in (model.heatmap_head, model.human_pool, model.fields) for p in m.parameters()]
    assert sum(float(p.grad.abs().sum()) for p in learning if p.grad is not None) > 0
    with pytest.raises(ValueError, match="no source heatmap head"):
        GHNeRF(preset("ghnerf-resnet18", pretrained="none")).freeze_human_path()


def test_training_with_a_frozen_pretrained_encoder_keeps_the_pretrained_weights(example_set, tmp_path, monkeypatch):
    """freeze_pretrained_2d: the checkpoint's encoder path equals the weights the 2D pretraining ended with, the
    other weights moved; asked without pretraining it is refused before anything is written."""
    import ghnerf.student.pretrain_2d_cache as pretrain_2d_cache
    import ghnerf.student.train as train_module
    from ghnerf.student.checkpoints import load_checkpoint

    after_2d = {}
    pretrain = pretrain_2d_cache.pretrain_source_heatmaps

    def snapshot(model, *args):
        out = pretrain(model, *args)
        after_2d.update({k: v.clone() for k, v in model.state_dict().items()})
        return out

    monkeypatch.setattr(pretrain_2d_cache, "pretrain_source_heatmaps", snapshot)
    cfg = preset("ghnerf-resnet18-evidence", pretrained="none")
    lines = []
    tcfg = TrainConfig(steps=2, rays=(8, 16), pretrain_2d_steps=2, freeze_pretrained_2d=True, checkpoint_every=2,
                       val_every=2, image_scale=0.5)
    train_module.train(cfg, tcfg, example_set, tmp_path / "run", log=lines.append)
    assert any("frozen after the 2D pretraining" in line for line in lines)
    assert "2D pretraining: 2 steps, kept nowhere (--pretrain-2d-cache DIR" in "\n".join(lines)  # said once, no cache
    trained = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["model"]
    path = ("encoder.", "human_proj.", "source_heatmap_head.")
    for key, value in trained.items():
        if key.startswith(path):
            torch.testing.assert_close(value, after_2d[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(v, after_2d[k]) for k, v in trained.items() if k.startswith("fields."))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_config"]["freeze_pretrained_2d"]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="--pretrain-2d-steps"):
        TrainConfig(freeze_pretrained_2d=True)


def test_2d_pretraining_warps_the_views_and_their_targets_when_asked(example_set, tmp_path, monkeypatch):
    """pretrain_2d_augment: ``train`` hands the pretraining Augment2D's ranges, and the loss then sees every view's
    targets as the warp moved them (here always mirrored: flipped left to right, left and right joints
    exchanged)."""
    import ghnerf.student.pretrain_2d as pretrain_module
    import ghnerf.student.pretrain_2d_cache as pretrain_2d_cache
    import ghnerf.student.train as train_module
    from ghnerf.base.body25 import BODY25_MIRROR
    from ghnerf.student.augment_2d import Augment2D

    seen = []
    monkeypatch.setattr(pretrain_module, "masked_mse", lambda pred, target, valid: seen.append((target, valid)) or (
        pred * 0).sum())
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none", source_heatmap_head=True))
    gen = torch.Generator().manual_seed(0)
    index = int(torch.randint(len(example_set), (1,), generator=torch.Generator().manual_seed(0)))
    mirror_only = Augment2D(rotation_deg=0.0, scale=1.0, mirror=1.0, brightness=0.0)
    pretrain_module.pretrain_source_heatmaps(model, example_set, 1, 1e-3, gen, torch.device("cpu"), lambda _: None,
                                             augment=mirror_only)
    ex = example_set.example(index)
    target, valid = seen[0]
    plain = torch.nn.functional.interpolate(ex.src_heatmaps, size=target.shape[-2:], mode="area")
    torch.testing.assert_close(target, plain.flip(-1)[:, list(BODY25_MIRROR)], atol=1e-5, rtol=0)
    assert torch.equal(valid[:, :, 0, 0], ex.src_joint_valid[:, list(BODY25_MIRROR)])

    handed = []
    monkeypatch.setattr(pretrain_2d_cache, "pretrain_source_heatmaps",
                        lambda *args: handed.append(inspect.signature(pretrain_module.pretrain_source_heatmaps)
                                                    .bind(*args).arguments["augment"]) or [])
    for flag in (True, False):
        tcfg = TrainConfig(steps=1, rays=(8, 16), pretrain_2d_steps=1, pretrain_2d_augment=flag, checkpoint_every=1,
                           val_every=1, image_scale=0.5)
        train_module.train(preset("ghnerf-resnet18-evidence", pretrained="none"), tcfg, example_set,
                           tmp_path / f"run-{flag}", log=lambda _: None)
    assert handed == [Augment2D(), None]


def test_source_heatmap_convs_give_the_head_spatial_context_and_start_near_empty_maps(example_set):
    """source_heatmap_convs: the head reads a pixel's neighbours (a change at one feature pixel moves the logits of
    the pixels around it, which the 1x1 readout never does), starts near empty maps, is frozen with the human path,
    and is refused without the head."""
    from ghnerf.student.model import SOURCE_HEATMAP_BIAS, source_heatmap_head

    torch.manual_seed(0)
    features = torch.randn(2, 32, 20, 24)
    poked = features.clone()
    poked[:, :, 10, 12] += 5.0
    for convs, reach in ((0, 0), (2, 2)):
        head = source_heatmap_head(32, 25, convs)
        changed = (head(poked) - head(features)).abs().sum((0, 1)) > 1e-6
        ys, xs = torch.nonzero(changed, as_tuple=True)
        assert (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())) == (10 - reach, 10 + reach,
                                                                             12 - reach, 12 + reach)
        readout = head if convs == 0 else head[-1]
        torch.testing.assert_close(readout.bias, torch.full((25,), SOURCE_HEATMAP_BIAS))
    model = GHNeRF(preset("ghnerf-resnet18-hypotheses", pretrained="none", source_heatmap_convs=2))
    maps = model.source_heatmaps(model.project_human(example_set.example(0).batch.src_images))
    assert maps.shape[1] == 25 and float(maps.mean()) < 0.1
    model.freeze_human_path()
    assert all(not p.requires_grad for p in model.source_heatmap_head.parameters())
    with pytest.raises(ConfigError, match="source_heatmap_convs"):
        preset("ghnerf-resnet18", pretrained="none", source_heatmap_convs=2)


def test_own_hypotheses_without_2d_pretraining_are_said(example_set, tmp_path):
    """A student that triangulates its own source heatmap head's keypoints, trained without 2D pretraining, is told
    at the start that the head starts untrained and what the benchmark's recipe passes; with it, or for a student
    without own hypotheses, nothing is said."""
    import ghnerf.student.train as train_module
    from ghnerf.student.train_config import OWN_POSE_NETWORK_2D_STEPS

    def notes(cfg, **tcfg) -> list[str]:
        lines = []
        train_module.train(cfg, TrainConfig(steps=1, rays=(8, 16), checkpoint_every=1, val_every=1, image_scale=0.5,
                                            **tcfg), example_set, tmp_path / f"run{len(list(tmp_path.iterdir()))}",
                           log=lines.append)
        return [line for line in lines if line.startswith("note: ")]

    own = preset("ghnerf-resnet18-hypotheses", pretrained="none")
    (note,) = notes(own)
    assert own.name in note and f"--pretrain-2d-steps auto, the default, trains it first: {OWN_POSE_NETWORK_2D_STEPS}" \
        in note
    assert notes(own, pretrain_2d_steps=1) == []
    assert notes(preset("ghnerf-resnet18-evidence", pretrained="none")) == []  # no hypotheses of its own


def test_a_cached_2d_pretraining_gives_the_same_run_and_is_taken_only_when_everything_matches(example_set, tmp_path):
    """pretrain_2d_cache: the first run pretrains and stores its pose network; a second run of the same config, seed
    and settings takes it without pretraining and ends with exactly the first run's weights (its NeRF steps draw
    the same rays); another seed, step count or config pretrains afresh; a damaged entry is named, left as it is,
    and nothing of the run is written."""
    from ghnerf.base.errors import CheckpointError
    from ghnerf.student.checkpoints import load_checkpoint
    from ghnerf.student.train import train

    cache = tmp_path / "cache"
    cfg = preset("ghnerf-resnet18-hypotheses", pretrained="none")

    def run(name, cfg=cfg, **overrides):
        lines = []
        tcfg = TrainConfig(**{"steps": 2, "rays": (8, 16), "pretrain_2d_steps": 2, "freeze_pretrained_2d": True,
                              "checkpoint_every": 2, "val_every": 2, "image_scale": 0.5,
                              "pretrain_2d_cache": str(cache), "cpu_precision": "float32", **overrides})
        train(cfg, tcfg, example_set, tmp_path / name, log=lines.append)
        record = json.loads((tmp_path / name / "run.json").read_text())["pretrained_2d"]
        return lines, record, load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")["model"]

    first_lines, first, first_model = run("first")
    assert not first["taken"] and any(line.startswith("2D pretraining step 2/2") for line in first_lines)
    assert sorted(p.name for p in cache.iterdir()) == [first["key"] + ".pt"]
    lines, second, model = run("second")
    assert second == {**first, "taken": True}
    assert not any(line.startswith("2D pretraining step") for line in lines)
    assert any("2D pretraining taken from" in line for line in lines)
    assert model.keys() == first_model.keys()
    for key, value in model.items():
        torch.testing.assert_close(value, first_model[key], rtol=0, atol=0, msg=key)
    # what decides the network decides the key: each of these pretrains afresh and adds its own entry
    keys = {first["key"]}
    for name, changed in (("seed", {"seed": 1}), ("steps", {"pretrain_2d_steps": 3}),
                          ("plain", {"pretrain_2d_augment": False})):
        lines, record, _ = run(name, **changed)
        assert not record["taken"] and record["key"] not in keys, name
        keys.add(record["key"])
    lines, record, _ = run("conv", cfg=replace(cfg, source_heatmap_convs=1))
    assert not record["taken"] and record["key"] not in keys
    assert len(list(cache.iterdir())) == len(keys) + 1
    # without the cache: pretrains, records no key, writes nothing to it
    lines, record, _ = run("uncached", pretrain_2d_cache=None)
    assert record == {"cache": None, "key": None, "taken": False} and len(list(cache.iterdir())) == len(keys) + 1
    # a damaged entry: one error naming it; the entry stays, the run writes nothing
    entry = cache / f"{first['key']}.pt"
    entry.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=f"{first['key']}.pt: damaged 2D pretraining cache entry"):
        run("damaged")
    assert entry.read_bytes() == b"not a torch file" and not (tmp_path / "damaged" / "run.json").exists()


def test_run_json_and_progress_say_what_the_2d_pretraining_did(example_set, tmp_path):
    """run.json's pretrained_2d is what ran: a run that pretrains records it and reports every 2D step to
    on_pretrain_step; one that takes it from the cache reports none; fine-tuning it (init_from, 2D steps asked, as
    `auto` asks for the default) skips the pretraining, says so in the log and records why; resuming the first run
    keeps its own record (run.json is written again at every start)."""
    from ghnerf.student.train import train

    cfg = preset("ghnerf-resnet18-hypotheses", pretrained="none")
    tcfg = TrainConfig(steps=2, rays=(8, 16), pretrain_2d_steps=2, freeze_pretrained_2d=True, checkpoint_every=2,
                       val_every=2, image_scale=0.5, cpu_precision="float32", pretrain_2d_cache=str(tmp_path / "c"))

    def record(name):
        return json.loads((tmp_path / name / "run.json").read_text())["pretrained_2d"]

    lines, calls = [], []
    train(cfg, tcfg, example_set, tmp_path / "first", log=lines.append,
          on_pretrain_step=lambda step, steps, rec: calls.append((step, steps, rec)))
    first = record("first")
    assert first["taken"] is False and first["key"]
    # progress: every 2D step, its count, its loss (the log's line at every fifth: here every step) and its rate on
    # the cosine schedule, lr (1 + cos(pi k / 2)) / 2 at step k + 1
    assert [(step, steps) for step, steps, _ in calls] == [(1, 2), (2, 2)]
    logged = [line for line in lines if line.startswith("2D pretraining step")]
    assert not any("kept nowhere" in line for line in lines)  # this one has a cache
    for (step, _, rec), line in zip(calls, logged, strict=True):
        assert f"source heatmap loss {rec['loss']:.5f}" in line and rec["it_s"] > 0
    assert [rec["lr"] for _, _, rec in calls] == pytest.approx([tcfg.lr, tcfg.lr / 2])
    calls.clear()
    train(cfg, tcfg, example_set, tmp_path / "again", log=lambda line: None,  # taken from the cache: no 2D steps
          on_pretrain_step=lambda *a: calls.append(a))
    assert record("again")["taken"] and not calls
    lines = []
    train(cfg, tcfg, example_set, tmp_path / "tuned", log=lines.append,
          init_from=tmp_path / "first" / "checkpoints" / "latest.pt", on_pretrain_step=lambda *a: calls.append(a))
    assert not calls
    assert "fine-tuning" in record("tuned")["skipped"] and str(tmp_path / "first") in record("tuned")["skipped"]
    assert any(line.startswith("2D pretraining skipped (2 steps asked)") for line in lines)
    assert not any(line.startswith("2D pretraining step") for line in lines)
    train(cfg, tcfg.model_copy(update={"steps": 4}), example_set, tmp_path / "first", resume=True,
          log=lambda line: None)
    assert record("first") == first
