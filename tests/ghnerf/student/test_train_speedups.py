"""The training speed-ups change nothing that is learned: the oneDNN 3D convolution's gradients, the human features
projected before upsampling, the example cache, and a few training steps with and without it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghnerf.student.config import preset
from ghnerf.student.cost_reg import Conv3d
from ghnerf.student.data import ExampleSet
from ghnerf.student.example_cache import ExampleCache, example_bytes
from ghnerf.student.model import GHNeRF
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float rounding: sums of thousands of terms, so relative to the largest value."""
    assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


@pytest.mark.parametrize("cin, cout, stride, bias, size", [(16, 8, 1, False, (8, 24, 20)), (8, 16, 2, True, (7, 9, 11)),
                                                          (8, 1, 1, False, (4, 6, 5))])
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


def _tensors(ex):
    return [ex.image, ex.mask, ex.box, ex.heatmaps, ex.joint_valid, ex.batch.src_images, ex.batch.src_K,
            ex.batch.src_w2c, ex.batch.tgt_K, ex.batch.near_far, ex.batch.src_images_unmasked]


def test_cached_examples_equal_fresh_ones_and_stay_in_budget(student_root):
    examples = ExampleSet(student_root, "train", image_scale=0.5)
    one = example_bytes(examples.example(0))
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
