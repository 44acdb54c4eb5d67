"""3D U-Nets regularising the variance cost volume (ENeRF lib/networks/enerf/cost_reg_net.py).

Output: an 8-channel feature volume (sampled by the NeRF) and per-plane depth logits.
The coarse level uses the shallower ``MinCostRegNet`` as ENeRF does.
"""

from functools import partial

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.student.feature_net import conv_bn_relu


class _OneDnnConv3d(torch.autograd.Function):
    """A float32 CPU 3D convolution through oneDNN both ways.

    Autograd's own backward of ``mkldnn_convolution`` goes through ``convolution_backward``, which picks its
    kernel by the same size rule as the forward and so takes the naive ``slow_conv3d`` backward (8-19x slower
    here). Handing it the input in oneDNN's layout makes it take oneDNN's kernel: the same gradients to float
    rounding."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: list[int], stride: list[int],
                dilation: list[int], groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (padding, stride, dilation, groups, bias is not None)
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        padding, stride, dilation, groups, has_bias = ctx.conf
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]]
        grad = grad.contiguous()
        by_offsets = wanted[1] and _offsets_apply(x, weight, padding, stride, dilation, groups)
        grads = torch.ops.aten.convolution_backward(
            grad.to_mkldnn(), x.to_mkldnn(), weight, [weight.shape[0]] if has_bias else None,
            stride, padding, dilation, False, [0] * len(padding), groups, [wanted[0], wanted[1] and not by_offsets,
                                                                          wanted[2]])
        dense = [g.to_dense() if g is not None and g.is_mkldnn else g for g in grads]
        if by_offsets:
            dense[1] = weight_grad_by_offsets(x, grad)
        return (*[g if w else None for g, w in zip(dense, wanted)], None, None, None, None)


def _offsets_apply(x: Tensor, weight: Tensor, padding: list[int], stride: list[int], dilation: list[int],
                   groups: int) -> bool:
    """Whether :func:`weight_grad_by_offsets` computes this convolution's weight gradient: 3x3x3, stride 1, padding
    1, one volume, fewer than 16 input channels (oneDNN's direct kernels block channels by 16; with fewer, its weight
    gradient takes a GEMM fallback, 1.7x slower than the offsets' products here)."""
    return (x.shape[0] == 1 and x.shape[1] < 16 and tuple(weight.shape[2:]) == (3, 3, 3) and list(padding) == [1] * 3
            and list(stride) == [1] * 3 and list(dilation) == [1] * 3 and groups == 1)


def weight_grad_by_offsets(x: Float[Tensor, "1 C D H W"], grad: Float[Tensor, "1 O D H W"]) -> Float[
        Tensor, "O C 3 3 3"]:
    """The weight gradient of a 3x3x3 convolution with stride 1 and padding 1: for each of the 27 kernel offsets,
    ``grad`` (O, voxels) times ``x`` shifted by that offset (C, voxels), transposed. Both volumes are zero-padded
    by one voxel and flattened, so a shift is a strided view of the same buffer (its start moves): 27 small matrix
    products and no copies of the volume."""
    (C, D, H, W), O = x.shape[1:], grad.shape[1]
    row, plane = W + 2, (H + 2) * (W + 2)
    xp = F.pad(x[0], (1, 1) * 3).view(C, -1)
    g = F.pad(grad[0], (1, 1) * 3).view(O, -1)
    first = plane + row + 1  # flat index of voxel (1, 1, 1), the first unpadded one; the last is len - 1 - first
    n = xp.shape[1] - 2 * first
    g = g[:, first:first + n]  # zero outside the volume, so the padding adds nothing to the sums
    shifts = [kd * plane + kh * row + kw for kd in (-1, 0, 1) for kh in (-1, 0, 1) for kw in (-1, 0, 1)]
    return torch.stack([g @ xp[:, first + s:first + s + n].T for s in shifts], dim=-1).view(O, C, 3, 3, 3)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that always takes oneDNN's kernel for float32 on CPU, forward and backward.

    PyTorch picks oneDNN by a size rule written for 2D inputs (N * C * D * H > 20480, ``use_mkldnn`` in
    aten/src/ATen/native/ConvUtils.h), so most of these volumes (C = 8 or 16, batch 1) fall back to the naive
    ``slow_conv3d``: 2-4x slower here forward, 8-19x backward, for the same numbers (to float rounding).
    Same parameters and state dict."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros"
                and torch.backends.mkldnn.is_available() and not isinstance(self.padding, str)):
            return _OneDnnConv3d.apply(x.contiguous(), weight.contiguous(), bias, list(self.padding),
                                       list(self.stride), list(self.dilation), self.groups)
        return super()._conv_forward(x, weight, bias)


conv3d_bn_relu = partial(conv_bn_relu, dims=3, conv3d=Conv3d)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose3d(cin, cout, 3, padding=1, output_padding=1, stride=2, bias=False),
                         nn.BatchNorm3d(cout))


def _match(x: Tensor, ref: Tensor) -> Tensor:
    """Crop/pad an upsampled volume to ``ref``'s size (odd sizes do not survive stride 2 exactly)."""
    if x.shape[-3:] == ref.shape[-3:]:
        return x
    return F.interpolate(x, size=ref.shape[-3:], mode="trilinear", align_corners=False)


class CostRegNet(nn.Module):
    """Three down / up stages (``deep=True``, fine levels) or two (``deep=False``, ENeRF's MinCostRegNet)."""

    def __init__(self, in_channels: int, deep: bool = True):
        super().__init__()
        self.deep = deep
        self.conv0 = conv3d_bn_relu(in_channels, 8)
        self.conv2 = nn.Sequential(conv3d_bn_relu(8, 16, stride=2), conv3d_bn_relu(16, 16))
        self.conv4 = nn.Sequential(conv3d_bn_relu(16, 32, stride=2), conv3d_bn_relu(32, 32))
        if deep:
            self.conv6 = nn.Sequential(conv3d_bn_relu(32, 64, stride=2), conv3d_bn_relu(64, 64))
            self.up7 = _up(64, 32)
        self.up9 = _up(32, 16)
        self.up11 = _up(16, 8)
        self.depth_conv = Conv3d(8, 1, 3, padding=1, bias=False)
        self.feat_conv = Conv3d(8, 8, 3, padding=1, bias=False)

    def forward(self, volume: Float[Tensor, "1 C D h w"]) -> tuple[Float[Tensor, "1 8 D h w"], Float[Tensor, "1 D h w"]]:
        c0 = self.conv0(volume)
        c2 = self.conv2(c0)
        x = self.conv4(c2)
        if self.deep:
            x = x + _match(self.up7(self.conv6(x)), x)
        x = c2 + _match(self.up9(x), c2)
        x = c0 + _match(self.up11(x), c0)
        # both output convolutions as one (weights stacked, 8 + 1 channels): one pass over the volume, same numbers
        out = self.feat_conv._conv_forward(x, torch.cat([self.feat_conv.weight, self.depth_conv.weight]), None)
        return out[:, :-1], out[:, -1]
