"""Channels-last memory layout for the 2D encoders (FPN and ResNet) on the CPU.

The source images arrive channels-last (NHWC strides, from the decoded HWC arrays), so oneDNN runs every 2D
convolution of the encoders in that layout. Two things fell out of it and cost a third of the encoders' time:
weights stored NCHW are converted on every call (forward and backward, and the weight gradient back), and the
gradients that reach the encoders' outputs come from ``grid_sample``'s backward, which returns NCHW, so every
layer's backward converted them again or took a slow strided path (bilinear upsampling's backward was 3-7x
slower). Both functions change only strides: the same numbers to float rounding.
"""

import torch
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
