"""Training losses (GHNeRF supplement §2.1; ENeRF lib/train/losses/enerf.py).

L = sum over levels of colour MSE + w_perc * perceptual (LPIPS-VGG on a rendered patch, fine level)
    + w_hm * heatmap MSE (joints missing in the target excluded) + w_cse * CSE MSE inside the mask
    + w_coord * coordinate MSE + w_src * source-view 2D heatmap MSE (auxiliary, ours).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ghnerf.base.errors import WeightsNotFoundError
from ghnerf.student.config import LossWeights
from ghnerf.student.encoders import torch_hub_checkpoint

VGG16_FILE = "vgg16-397923af.pth"


@dataclass
class LossTerms:
    total: Tensor
    terms: dict[str, float]


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error over the elements where ``mask`` (broadcastable) is true."""
    err = (pred - target) ** 2
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


class PerceptualLoss(torch.nn.Module):
    """LPIPS with a VGG16 backbone, weights from the torch hub cache (never a random backbone)."""

    def __init__(self, vgg_weights: str | Path | None = None):
        super().__init__()
        import lpips

        path = Path(vgg_weights) if vgg_weights else torch_hub_checkpoint(VGG16_FILE)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"the perceptual loss needs VGG16 ImageNet weights at {path}; download "
                f"https://download.pytorch.org/models/{VGG16_FILE} on a machine with network and copy it there, "
                "or train with --perceptual-weight 0")
        self.lpips = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
        import torchvision

        vgg = torchvision.models.vgg16(weights=None)
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        feats = vgg.features
        net = self.lpips.net
        for slice_, (a, b) in zip((net.slice1, net.slice2, net.slice3, net.slice4, net.slice5),
                                  ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))):
            for k in range(a, b):
                slice_._modules[str(k)].load_state_dict(feats[k].state_dict())
        for p in self.lpips.parameters():
            p.requires_grad_(False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: (P, P, 3) in [0, 1]."""
        to = lambda x: x.permute(2, 0, 1)[None] * 2 - 1  # noqa: E731
        return self.lpips(to(pred), to(target)).mean()


def student_loss(levels, targets: list[dict], weights: LossWeights, perceptual: PerceptualLoss | None = None,
                 patch: tuple[Tensor, Tensor] | None = None,
                 source: tuple[Tensor, Tensor, Tensor] | None = None) -> LossTerms:
    """Sum the configured terms over levels, each level's terms weighted by ``weights.levels``.

    Args:
        levels: the model's :class:`LevelOutputs` per level.
        targets: per level, {"rgb": (R,3), "heatmaps": (R,J)|None, "joint_valid": (J,)|None,
            "cse": (R,16)|None, "cse_mask": (R,)|None}.
        patch: (pred (P,P,3), target (P,P,3)) of the fine level for the perceptual term.
        source: (pred (V,J,h,w), target (V,J,h,w), joint valid (V,J)) of the source heatmap head.
    """
    total = torch.zeros((), device=levels[0].rgb.device)
    terms: dict[str, float] = {}

    def add(name: str, value: Tensor, w: float) -> None:
        nonlocal total
        total = total + w * value
        terms[name] = terms.get(name, 0.0) + float(value.detach())

    for out, tgt, level_weight in zip(levels, targets, weights.levels or (1.0,) * len(levels)):
        add("color", masked_mse(out.rgb, tgt["rgb"]), level_weight * weights.color)
        if out.heatmaps is not None and tgt.get("heatmaps") is not None and weights.heatmap > 0:
            valid = tgt.get("joint_valid")
            add("heatmap", masked_mse(out.heatmaps, tgt["heatmaps"], None if valid is None else valid[None]),
                level_weight * weights.heatmap)
        if out.cse is not None and tgt.get("cse") is not None and weights.cse > 0:
            add("cse", masked_mse(out.cse, tgt["cse"], tgt["cse_mask"][:, None]), level_weight * weights.cse)
        if out.coord_error is not None and weights.coord > 0:
            add("coord", out.coord_error, level_weight * weights.coord)
    if source is not None and weights.source_heatmap > 0:
        pred, target, valid = source
        add("source_heatmap", masked_mse(pred, target, valid[:, :, None, None]), weights.source_heatmap)
    if perceptual is not None and patch is not None and weights.perceptual > 0:
        add("perceptual", perceptual(*patch), weights.perceptual)
    return LossTerms(total, terms)
