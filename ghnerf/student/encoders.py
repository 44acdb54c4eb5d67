"""Human feature encoders, pretrained weights loaded offline.

* ``resnet18`` / ``resnet34`` (torchvision): pixelNeRF's pyramid (conv1, layer1-3),
  each upsampled to 1/2 resolution and concatenated (64 + 64 + 128 + 256 = 512 ch).
* ``dino`` (timm ``vit_small_patch8_224.dino``): outputs of blocks 9 and 11
  concatenated (768 ch at 1/8), bilinearly upsampled to 1/2 resolution.

Weights come from local files only: the torch hub cache
(``$TORCH_HOME/hub/checkpoints``), the Hugging Face cache (``HF_HUB_OFFLINE=1``) or
an explicit path. When they are missing, :class:`WeightsNotFoundError` names the
exact file and where to put it; ``pretrained="none"`` is an explicit random init.
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.errors import ConfigError, WeightsNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_MODEL = "vit_small_patch8_224.dino"


def torch_hub_checkpoint(filename: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def dino_cache_file() -> Path:
    """The DINO weights in the Hugging Face cache, looked up without any network access."""
    from huggingface_hub import try_to_load_from_cache

    cache = Path(os.environ.get("HF_HUB_CACHE") or
                 Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    repo = f"timm/{DINO_MODEL}"
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename, cache_dir=cache)
        if isinstance(found, str):
            return Path(found)
    where = cache / f"models--timm--{DINO_MODEL}"
    raise WeightsNotFoundError(
        f"DINO ViT-S/8 weights not found in the Hugging Face cache ({where}); run `huggingface-cli download {repo}` "
        "on a machine with network and copy that cache folder here (HF_HOME), or pass --pretrained PATH to "
        "model.safetensors, or --pretrained none for a random init")


def resnet_weights_file(arch: str) -> tuple[Path, str]:
    """(where ``--pretrained imagenet`` looks for ``arch``'s ImageNet weights, the URL to download them from)."""
    import torchvision

    enum = getattr(torchvision.models, f"ResNet{arch[6:]}_Weights").IMAGENET1K_V1
    return torch_hub_checkpoint(Path(enum.url).name), enum.url


class ResNetEncoder(nn.Module):
    def __init__(self, arch: str, pretrained: str):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        self.weights_source = "none (random init)"
        if pretrained != "none":
            default, url = resnet_weights_file(arch)
            path = Path(pretrained) if pretrained != "imagenet" else default
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"{arch} ImageNet weights not found at {path}; download {url} on a machine with network and "
                    f"copy it there (or pass --pretrained PATH, or --pretrained none for a random init)")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.weights_source = str(path)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.out_channels = 64 + 64 + 128 + 256
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V 512 H/2 W/2"]:
        x = (images - self.mean) / self.std
        f0 = self.stem(x)
        f1 = self.layer1(self.pool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        size = f0.shape[-2:]
        up = [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in (f1, f2, f3)]
        return torch.cat([f0, *up], dim=1)


class DinoEncoder(nn.Module):
    def __init__(self, pretrained: str):
        super().__init__()
        import timm

        self.weights_source = "none (random init)"
        if pretrained == "none":
            self.vit = timm.create_model(DINO_MODEL, pretrained=False, dynamic_img_size=True)
        else:
            path = Path(pretrained) if pretrained != "imagenet" else dino_cache_file()
            self.vit = timm.create_model(DINO_MODEL, pretrained=True, dynamic_img_size=True,
                                         pretrained_cfg_overlay={"file": str(path)})
            self.weights_source = str(path)
        self.out_channels = 2 * self.vit.embed_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V 768 H/2 W/2"]:
        x = (images - self.mean) / self.std
        H, W = x.shape[-2:]
        x = F.pad(x, (0, (-W) % 8, 0, (-H) % 8))
        feats = self.vit.get_intermediate_layers(x, n=[8, 10], reshape=True)  # blocks 9 and 11 (1-based)
        f = torch.cat(list(feats), dim=1)
        return F.interpolate(f, size=(H // 2, W // 2), mode="bilinear", align_corners=True)


def build_encoder(name: str, pretrained: str) -> nn.Module | None:
    if name == "none":
        return None
    if name in ("resnet18", "resnet34"):
        return ResNetEncoder(name, pretrained)
    if name == "dino":
        return DinoEncoder(pretrained)
    raise ConfigError(f"unknown encoder {name!r}; choose none, resnet18, resnet34 or dino")
