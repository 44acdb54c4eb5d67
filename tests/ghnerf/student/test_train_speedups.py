"""The training speed-ups change nothing that is learned: the oneDNN 3D convolution's gradients, the human features
projected before upsampling, the variance's one-pass backward, the channels-last encoders, the example cache, and a
few training steps with and without it."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghnerf.student.config import preset
from ghnerf.student.cost_reg import Conv3d, _offsets_apply, weight_grad_by_offsets
from ghnerf.student.cost_volume import _ViewVariance
from ghnerf.student.data import ExampleSet
from ghnerf.student.example_cache import ExampleCache, example_bytes
from ghnerf.student.layouts import Conv1x1, for_sampling
import ghnerf.student.model as model_module
from ghnerf.student.model import GHNeRF
from ghnerf.student.model_io import MultiViewBatch
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig
from ghnerf.student.views import level_maps


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float rounding: sums of thousands of terms, so relative to the largest value."""
    assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


@pytest.mark.parametrize("cin, cout, stride, bias, size", [(16, 8, 1, False, (8, 24, 20)), (8, 16, 2, True, (7, 9, 11)),
                                                          (8, 1, 1, False, (4, 6, 5)), (8, 9, 1, False, (8, 20, 24)),
                                                          (3, 4, 1, True, (5, 7, 6))])
def test_onednn_conv3d_gradients_equal_autograds(cin, cout, stride, bias, size):
    torch.manual_seed(0)
    conv = Conv3d(cin, cout, 3, stride=stride, padding=1, bias=bias)
    x = torch.randn(1, cin, *size, requires_grad=True)
    out = conv(x)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, [x, *conv.parameters()], grad)
    ref_out = F.conv3d(x, conv.weight, conv.bias, stride=stride, padding=1)
    ref = torch.autograd.grad(ref_out, [x, *conv.parameters()], grad)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours, ref):
        _close(a, b)


@pytest.mark.parametrize("name", ["ghnerf-resnet18", "ghnerf-dino"])
def test_projection_before_upsampling_equals_after(name):
    torch.manual_seed(0)
    model = GHNeRF(preset(name, pretrained="none"))
    images = torch.rand(2, 3, 48, 40, requires_grad=True)
    after = model.human_proj(model.encoder(images))
    before = model.project_human(images)
    _close(before, after)
    g = torch.randn_like(after)
    _close(torch.autograd.grad(before, images, g)[0], torch.autograd.grad(after, images, g)[0])


def test_weight_grad_by_offsets_is_the_convolutions():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 9, 7)
    w = torch.randn(5, 8, 3, 3, 3, requires_grad=True)
    out = F.conv3d(x, w, padding=1)
    g = torch.randn_like(out)
    assert _offsets_apply(x, w, [1] * 3, [1] * 3, [1] * 3, 1)
    _close(weight_grad_by_offsets(x, g), torch.autograd.grad(out, w, g)[0])


@pytest.mark.parametrize("channels_last_input", [True, False])
def test_conv1x1_equals_conv2d(channels_last_input):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 9, 7)
    x = (x.contiguous(memory_format=torch.channels_last) if channels_last_input else x).requires_grad_()
    conv = Conv1x1(12, 5)
    ref = torch.nn.Conv2d(12, 5, 1)
    ref.load_state_dict(conv.state_dict())
    out, ref_out = conv(x), ref(x)
    g = torch.randn_like(ref_out)
    _close(out, ref_out)
    assert out.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(torch.autograd.grad(out, [x, *conv.parameters()], g),
                    torch.autograd.grad(ref_out, [x, *ref.parameters()], g), strict=True):
        _close(a, b)


@pytest.mark.parametrize("views", [2, 3])
def test_view_variance_and_its_gradient_equal_autograds(views):
    torch.manual_seed(0)
    x = torch.randn(views, 16, 8, 50, requires_grad=True)
    ours = _ViewVariance.apply(x)
    mean = x.mean(dim=0)
    ref = (x**2).mean(dim=0) - mean**2  # ENeRF's formula through autograd
    g = torch.randn_like(ref)
    _close(ours, ref)
    _close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    if views == 2:  # a square: never below zero, where the difference of means can round there
        assert float(ours.min()) >= 0


@pytest.mark.parametrize("name", ["ghnerf-resnet18", "ghnerf-resnet18-evidence"])
def test_channels_last_encoders_give_the_same_features_and_gradients(name, monkeypatch):
    """The layouts change strides only: a copy of the model with NCHW weights and NCHW images, without the gradient
    hooks, gives the same features and parameter gradients; ours stores its conv weights and gets its weight
    gradients channels-last."""
    torch.manual_seed(0)
    model = GHNeRF(preset(name, pretrained="none")).train()
    ref = GHNeRF(preset(name, pretrained="none")).train()
    ref.load_state_dict(model.state_dict())
    ref.to(memory_format=torch.contiguous_format)
    images = torch.rand(2, 64, 48, 3).permute(0, 3, 1, 2)  # channels-last, as the examples' images are
    cams = (torch.eye(3).expand(2, 3, 3), torch.eye(4).expand(2, 4, 4), torch.eye(3), torch.eye(4),
            torch.tensor([1.0, 2.0]))

    def features_and_grads(m: GHNeRF, images: torch.Tensor):
        enc = m.encode(MultiViewBatch(images, *cams))
        feats = [*enc.fpn, enc.human]
        torch.manual_seed(1)
        sum((f * torch.randn(f.shape)).sum() for f in feats).backward()  # NCHW gradients, as grid_sample's give
        return feats, {k: p.grad for k, p in m.named_parameters() if p.grad is not None}

    ours, ours_g = features_and_grads(model, images)
    monkeypatch.setattr(model_module, "channels_last_grad", lambda x: x)
    theirs, theirs_g = features_and_grads(ref, images.contiguous())
    for a, b in zip(ours, theirs, strict=True):
        _close(a, b)
    assert ours_g.keys() == theirs_g.keys() and ours_g
    for k in ours_g:
        _close(ours_g[k], theirs_g[k])
    conv = model.feature_net.conv0[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert conv.weight.grad.is_contiguous(memory_format=torch.channels_last)
    assert not ref.feature_net.conv0[0][0].weight.grad.is_contiguous(memory_format=torch.channels_last)


def test_maps_at_their_own_size_are_not_resampled_and_equal_the_resampled_ones(student_root):
    ex = ExampleSet(student_root, "train", image_scale=0.5).example(0)
    size = tuple(ex.heatmaps.shape[-2:])
    resampled = F.interpolate(ex.heatmaps[None], size=size, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(level_maps(ex, size)["heatmaps"], resampled, rtol=0, atol=0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none"))
    images = ex.batch.src_images
    maps = model._image_maps(1, ex.batch, model.encode(ex.batch))  # the fine level: full-resolution features
    ref = F.interpolate(images, size=images.shape[-2:], mode="bilinear", align_corners=True)
    torch.testing.assert_close(maps[:, -3:], ref, rtol=0, atol=0)


def _tensors(ex):
    return [ex.image, ex.mask, ex.box, ex.heatmaps, ex.joint_valid, ex.batch.src_images, ex.batch.src_K,
            ex.batch.src_w2c, ex.batch.tgt_K, ex.batch.near_far, ex.batch.src_images_unmasked]


def test_cached_examples_equal_fresh_ones_and_stay_in_budget(student_root):
    examples = ExampleSet(student_root, "train", image_scale=0.5)
    first = examples.example(0)
    one = example_bytes(first)
    without = dataclasses.replace(first, batch=dataclasses.replace(first.batch, src_photos=None))
    assert one == example_bytes(without) + sum(p.nbytes for p in first.batch.src_photos.images) > example_bytes(
        without)  # the photographs before scaling count too
    cache = ExampleCache(examples, megabytes=2.5 * one / 2**20)  # room for two
    for i in (0, 1, 0, 2, 0, 1):
        for a, b in zip(_tensors(cache.example(i)), _tensors(ExampleSet(student_root, "train", image_scale=0.5).example(i))):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert cache.bytes <= cache.capacity
    assert (cache.hits, cache.misses) == (2, 4)  # 0 hit twice; 1 evicted by 2 (least recently used), read again
    assert ExampleCache(examples, 0.0).example(0) is not ExampleCache(examples, 0.0).example(0)


def test_training_with_the_cache_gives_the_same_losses(student_root, tmp_path, monkeypatch):
    cfg = preset("ghnerf-resnet18", pretrained="none")
    examples = ExampleSet(student_root, "train", image_scale=0.5, subjects=["CoreView_901"])  # 8 items
    built = []
    fresh = ExampleSet.example
    monkeypatch.setattr(ExampleSet, "example", lambda self, i, k=None: built.append(i) or fresh(self, i, k))
    runs = []
    for mb in (0, 64):
        built.clear()
        runs.append(train(cfg, TrainConfig(steps=8, rays=(32, 64), example_cache_mb=mb), examples,
                          tmp_path / str(mb), log=lambda s: None))
    assert len(built) < 8  # the cached run built fewer examples than it drew: some steps were served by the cache
    np.testing.assert_array_equal([h["loss"] for h in runs[0].history], [h["loss"] for h in runs[1].history])


@pytest.mark.parametrize("shape", [(2, 25, 33, 40), (1, 8, 6, 17, 21)])
def test_channels_last_maps_sample_the_same_values_and_gradients(shape):
    """layouts.for_sampling changes strides only: grid_sample reads the same values from it and sends the same
    gradients back (into the NCHW tensor it came from); other ranks and devices are returned as they are."""
    torch.manual_seed(0)
    maps = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(shape[0], 500, *([1] * (len(shape) - 3)), len(shape) - 2, dtype=torch.float64) * 2.4 - 1.2
    laid = for_sampling(maps)
    assert laid.is_contiguous(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    plain, fast = (F.grid_sample(m, grid, align_corners=True) for m in (maps, laid))
    assert torch.equal(plain, fast)
    weights = torch.rand_like(plain)
    (g_plain,) = torch.autograd.grad((plain * weights).sum(), maps)
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), maps)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-12, atol=1e-12)
    flat = torch.rand(3, 4)
    assert for_sampling(flat) is flat


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fpn_top_down_step_equals_upsample_plus_lateral(mode):
    """The FPN's fused top-down step (bias before upsampling, the lateral 1x1 accumulated into the upsampled map)
    gives ENeRF's ``upsample(f) + lateral(c)`` and its gradients to float rounding."""
    import torch.nn.functional as F

    from ghnerf.student.feature_net import FeatureNet
    from ghnerf.student.layouts import channels_last

    torch.manual_seed(0)
    net = channels_last(FeatureNet())
    for p in net.parameters():  # away from the initialisation's zero biases, so the bias path is checked
        p.data.normal_(0, 0.2 if p.dim() > 1 else 0.1)
    getattr(net, mode)()
    x = torch.rand(2, 3, 64, 80).contiguous(memory_format=torch.channels_last).requires_grad_()

    def plain(x):
        c0 = net.conv0(x)
        c1 = net.conv1(c0)
        c2 = net.conv2(c1)
        f2 = net.top(c2)
        f1 = F.interpolate(f2, size=c1.shape[-2:], mode="bilinear", align_corners=True) + net.lat1(c1)
        f0 = F.interpolate(f1, size=c0.shape[-2:], mode="bilinear", align_corners=True) + net.lat0(c0)
        return f2, net.smooth1(f1), net.smooth0(f0)

    ours, ref = net(x), plain(x)
    grads = [torch.randn_like(r) for r in ref]
    wrt = [x, net.lat0.weight, net.lat0.bias, net.lat1.weight, net.lat1.bias]
    for a, b in zip(ours, ref):
        _close(a, b)
    for a, b in zip(torch.autograd.grad(ours, wrt, grads), torch.autograd.grad(ref, wrt, grads)):
        _close(a, b)
