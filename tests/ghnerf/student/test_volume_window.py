"""The fine cost volume built only where the rendered rays read it (evaluation): the U-Net's reach is what the
window module says, the window's bounds, and the rendered rays equal those rendered from the whole volume."""

import pytest
import torch

from ghnerf.student.config import preset
from ghnerf.student.cost_reg import CostRegNet
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.volume_window import UNET_REACH, UNET_STRIDE, VolumeWindow, volume_window, window_pixels


def _randomise_batch_norm(module: torch.nn.Module) -> None:
    """Running statistics and affine parameters away from the identity, so eval-mode BatchNorm shifts and scales."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1.0, 0.2)
            m.bias.data.normal_(0, 0.1)


@pytest.mark.parametrize("deep", [True, False])
def test_unet_reach_is_measured_by_an_impulse(deep):
    """An impulse at each of the stride's phases changes the U-Net's outputs exactly UNET_REACH voxels away at most
    (and somewhere that far): the window's margin is the architecture's, not a guess."""
    torch.manual_seed(0)
    net = CostRegNet(8, deep=deep).eval()
    _randomise_batch_norm(net)
    D, n, centre = 4, 80, 40
    zero = torch.zeros(1, 8, D, n, n)
    reach = 0
    with torch.no_grad():
        f0, l0 = net(zero)
        for phase in range(UNET_STRIDE[deep]):
            impulse = zero.clone()
            impulse[0, :, D // 2, centre + phase, centre + phase] = 1.0
            f1, l1 = net(impulse)
            changed = (f1 - f0).abs().amax(dim=(0, 1, 2)) + (l1 - l0).abs().amax(dim=(0, 1))
            ys, xs = torch.nonzero(changed > 0, as_tuple=True)
            c = centre + phase
            reach = max(reach, c - int(ys.min()), int(ys.max()) - c, c - int(xs.min()), int(xs.max()) - c)
    assert reach == UNET_REACH[deep]


def test_window_bounds():
    # a 512 x 512 render over a 256 x 256 grid (corners aligned): columns 140..400 -> grid 69.9..199.6
    uv = torch.tensor([[140.0, 0.0], [400.0, 511.0]])
    w = volume_window(uv, (512, 512), (256, 256), deep=True)
    margin = UNET_REACH[True] + 2
    assert w == VolumeWindow(0, 256, (69 - margin) // 8 * 8, -(-(199 + margin + 1) // 8) * 8)
    assert w.x0 % 8 == 0 and w.x1 % 8 == 0 and w.size == (256, w.x1 - w.x0)
    assert volume_window(torch.tensor([[0.0, 0.0], [511.0, 511.0]]), (512, 512), (256, 256), True) is None  # all
    assert volume_window(uv, (512, 512), (252, 256), True) is None  # 252 is no multiple of 8: the U-Net resamples
    assert volume_window(uv[:0], (512, 512), (256, 256), True) is None
    pixels = window_pixels(VolumeWindow(2, 4, 5, 8))
    assert pixels.shape == (2, 3, 2) and pixels[0, 0].tolist() == [5.0, 2.0] and pixels[1, 2].tolist() == [7.0, 3.0]


def test_rays_rendered_from_the_window_equal_those_from_the_whole_volume(student_root):
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none")).eval()
    _randomise_batch_norm(model)
    ex = ExampleSet(student_root, "train", image_scale=1.0).example(0)
    ys, xs = torch.meshgrid(torch.arange(20, 61.0), torch.arange(90, 128.0), indexing="ij")
    uv = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # a strip at the image's right edge
    rays = [uv[:0], uv]
    used = []
    level_volume = model._level_volume
    model._level_volume = lambda i, *a: used.append(a[-1]) or level_volume(i, *a)
    with torch.no_grad():
        windowed = model(ex.batch, rays)[-1]
        model._volume_window = lambda *a: None
        whole = model(ex.batch, rays)[-1]
    window = used[1]
    assert window is not None and window.size[1] < 64 and used[3] is None  # fine level: a window, then the whole
    for name in ("rgb", "depth", "acc"):
        torch.testing.assert_close(getattr(windowed, name), getattr(whole, name), atol=1e-6, rtol=0)
    torch.testing.assert_close(windowed.heatmaps, whole.heatmaps, atol=1e-6, rtol=0)


def test_a_window_is_refused_in_training_mode(student_root):
    model = GHNeRF(preset("enerf")).train()
    ex = ExampleSet(student_root, "train", image_scale=1.0).example(0)
    with pytest.raises(ValueError, match="eval mode"):
        model._level_volume(1, ex.batch, model.encode(ex.batch), None, VolumeWindow(0, 64, 0, 32))
