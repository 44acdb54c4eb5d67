"""detach_heads: the heads' losses reach the heads and the encoder, never the radiance field; outputs unchanged."""

import dataclasses

import torch

from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF


def _grads_after_heatmap_loss(cfg, ex):
    torch.manual_seed(0)
    model = GHNeRF(cfg)
    uv = torch.tensor([[10.0, 12.0], [20.0, 25.0], [30.0, 31.0]])
    levels = model(ex.batch, [uv, uv])
    (levels[0].heatmaps.sum() + levels[1].heatmaps.sum()).backward()
    grads = {name.split(".")[0]: 0.0 for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        if p.grad is not None:
            grads[name.split(".")[0]] += float(p.grad.abs().sum())
    return levels, grads


def test_detached_heads_leave_the_radiance_field_alone(student_root):
    ex = ExampleSet(student_root, "train", image_scale=0.5).example(0)
    cfg = preset("ghnerf-resnet18+cse", pretrained="none")
    joint, g_joint = _grads_after_heatmap_loss(cfg, ex)
    apart, g_apart = _grads_after_heatmap_loss(dataclasses.replace(cfg, detach_heads=True), ex)
    for a, b in zip(joint, apart):  # same forward pass
        torch.testing.assert_close(a.heatmaps, b.heatmaps)
        torch.testing.assert_close(a.rgb, b.rgb)
    for part in ("fields", "cost_regs", "feature_net"):  # the NeRF: reached only without the detach
        assert g_joint[part] > 0 and g_apart[part] == 0, part
    for part in ("heatmap_head", "encoder", "human_proj"):
        assert g_apart[part] > 0, part
