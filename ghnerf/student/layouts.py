"""Channels-last memory layout for the 2D encoders (FPN and ResNet) on the CPU.

The source images arrive channels-last (NHWC strides, from the decoded HWC arrays), so oneDNN runs every 2D
convolution of the encoders in that layout. Two things fell out of it and cost a third of the encoders' time:
weights stored NCHW are converted on every call (forward and backward, and the weight gradient back), and the
gradients that reach the encoders' outputs come from ``grid_sample``'s backward, which returns NCHW, so every
layer's backward converted them again or took a slow strided path (bilinear upsampling's backward was 3-7x
slower). A third costs more than it should: with one thread PyTorch sends 1x1 convolutions to its naive kernel
(``slow_conv2d``, which broadcasts the bias by a copy and whose backward is 1.1-2x slower here than a matrix
product over the channels of the channels-last view, :func:`conv1x1`). All of them change only strides and the
order of float operations: the same numbers to float rounding.
"""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


def channels_last(module: nn.Module) -> nn.Module:
    """Store ``module``'s 4D parameters (its 2D convolution weights) channels-last; the state dict's values and
    keys are unchanged (loading copies into these tensors, keeping their layout)."""
    return module.to(memory_format=torch.channels_last)


def channels_last_grad(x: Tensor) -> Tensor:
    """``x`` itself; while training, the gradient that flows back into ``x`` is made channels-last first."""
    if x.requires_grad and x.dim() == 4:
        x.register_hook(lambda g: g.contiguous(memory_format=torch.channels_last))
    return x


def for_sampling(x: Float[Tensor, "N C *spatial"]) -> Float[Tensor, "N C *spatial"]:
    """``x`` (4D or 5D) laid out channels-last on the CPU, the layout ``grid_sample`` reads fastest there: a sample's
    channels are one run of memory instead of one cache line per channel plane (the 25 joint heatmaps 1.5x, the
    8-channel feature volume 1.8x faster here); the same values, and the same tensor on other devices."""
    if x.device.type != "cpu" or x.dim() not in (4, 5):
        return x
    return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)


def conv1x1(x: Float[Tensor, "N C H W"], weight: Float[Tensor, "O C 1 1"], bias: Tensor | None = None) -> Float[
        Tensor, "N O H W"]:
    """``F.conv2d(x, weight, bias)`` for a 1x1 ``weight``: a matrix product over the channels of ``x``'s NHWC view
    (a view when ``x`` is channels-last). The result is channels-last."""
    return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)


class Conv1x1(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` computed by :func:`conv1x1`; the same parameters and state dict."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return conv1x1(x, weight, bias)
