"""ENeRF's image feature pyramid (zju3dv/ENeRF lib/networks/enerf/feature_net.py): 3 scales, FPN-style."""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.student.layouts import Conv1x1, conv1x1


class ConvBnReLU(nn.Sequential):
    """Convolution (no bias) -> BatchNorm -> ReLU; in eval mode the normalisation is folded into the convolution's
    weights for that call (one pass over the activations instead of two; the same numbers to float rounding).
    Children ``0, 1, 2`` as a plain ``nn.Sequential``, so state dicts are unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        conv, bn, relu = self
        if self.training or bn.running_var is None or bn.weight is None:
            return super().forward(x)
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
        return relu(conv._conv_forward(x, weight, bn.bias - bn.running_mean * scale))


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, dims: int = 2,
                 conv3d: type[nn.Conv3d] = nn.Conv3d) -> ConvBnReLU:
    conv = nn.Conv2d if dims == 2 else conv3d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return ConvBnReLU(conv(cin, cout, k, stride=stride, padding=k // 2, bias=False), bn(cout), nn.ReLU(inplace=True))


class FeatureNet(nn.Module):
    """Images -> features at 1/4 (32 ch), 1/2 (16 ch) and full (8 ch) resolution."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Sequential(conv_bn_relu(3, 8), conv_bn_relu(8, 8))
        self.conv1 = nn.Sequential(conv_bn_relu(8, 16, 5, 2), conv_bn_relu(16, 16))
        self.conv2 = nn.Sequential(conv_bn_relu(16, 32, 5, 2), conv_bn_relu(32, 32))
        self.top = Conv1x1(32, 32)
        self.lat1 = Conv1x1(16, 32)
        self.lat0 = Conv1x1(8, 32)
        self.smooth1 = nn.Conv2d(32, 16, 3, padding=1)
        self.smooth0 = nn.Conv2d(32, 8, 3, padding=1)

    def forward(self, images: Float[Tensor, "V 3 H W"]) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (V, 32, H/4, W/4), (V, 16, H/2, W/2), (V, 8, H, W)."""
        c0 = self.conv0(images)
        c1 = self.conv1(c0)
        c2 = self.conv2(c1)
        f2 = self.top(c2)
        f1 = upsample_plus_lateral(f2, c1, self.lat1)
        f0 = upsample_plus_lateral(f1, c0, self.lat0)
        return f2, self.smooth1(f1), self.smooth0(f0)


def upsample_plus_lateral(coarse: Float[Tensor, "V C h w"], fine: Float[Tensor, "V Ci H W"], lateral: Conv1x1
                          ) -> Float[Tensor, "V C H W"]:
    """``upsample(coarse) + lateral(fine)`` (bilinear, corners aligned; the FPN's top-down step). Channels-last, the
    lateral 1x1 convolution accumulates into the upsampled map as one matrix product (``addmm_``) and its bias is
    added before upsampling, at a quarter of the pixels (corner-aligned bilinear weights sum to 1): no separate
    bias broadcast, sum or (V, C, H, W) temporary. The same numbers to float rounding."""
    size = fine.shape[-2:]
    if lateral.bias is not None:
        coarse = coarse + lateral.bias.view(1, -1, 1, 1)
    up = F.interpolate(coarse, size=size, mode="bilinear", align_corners=True)
    fine_nhwc = fine.permute(0, 2, 3, 1)
    if not (up.is_contiguous(memory_format=torch.channels_last) and fine_nhwc.is_contiguous()
            and up.dtype == fine.dtype == lateral.weight.dtype):  # e.g. under autocast, which in-place ops skip
        return up + conv1x1(fine, lateral.weight)
    flat = up.permute(0, 2, 3, 1).view(-1, up.shape[1])
    flat.addmm_(fine_nhwc.reshape(-1, fine.shape[1]), lateral.weight.flatten(1).T)
    return up
