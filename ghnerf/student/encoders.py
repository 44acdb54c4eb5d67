"""Human feature encoders, pretrained weights loaded offline.

* ``resnet18`` / ``resnet34`` (torchvision): pixelNeRF's pyramid (conv1, layer1-3),
  each upsampled to 1/2 resolution and concatenated (64 + 64 + 128 + 256 = 512 ch).
* ``dino`` (timm ``vit_small_patch8_224.dino``): outputs of blocks 9 and 11
  concatenated (768 ch at 1/8), bilinearly upsampled to 1/2 resolution.
* ``mediapipe``: a frozen pretrained pose network as the human encoder (ours, not
  the paper's): MediaPipe Pose (bundled in the mediapipe wheel) run on each source
  photograph, its 25 BODY_25 heatmaps at 1/2 resolution as the human feature. The
  student then learns to fuse the views' 2D evidence in 3D and to render it from
  views it never saw; it needs MediaPipe at inference (its time is in the FPS).

Weights come from local files only: the torch hub cache
(``$TORCH_HOME/hub/checkpoints``), the Hugging Face cache (``HF_HUB_OFFLINE=1``) or
an explicit path. When they are missing, :class:`WeightsNotFoundError` names the
exact file and where to put it; ``pretrained="none"`` is an explicit random init, and
``pretrained="auto"`` (:mod:`ghnerf.student.weights`) is resolved before a model is built.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.base.errors import ConfigError, WeightsNotFoundError
from ghnerf.student.layouts import conv1x1
from ghnerf.student.model_io import SourcePhotos
from ghnerf.student.state_check import load_checked, read_state_file
from ghnerf.student.weights import (
    DINO_MODEL,
    dino_cache_file,
    random_init_note,
    resnet_weights_file,
    resolve_pretrained,
)
from teachers.base import TeacherInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def project_then_upsample(levels: list[Tensor], proj: nn.Conv2d, size: tuple[int, int]) -> Tensor:
    """``proj(cat([upsample(f, size) for f in levels]))`` for a 1x1 convolution ``proj``: each level's slice of
    ``proj`` applied at the level's own resolution, then upsampled (bilinear, corners aligned) and summed. Both
    maps are linear and bilinear weights sum to 1, so they commute: the same numbers to float rounding, with
    ``proj.out_channels`` channels upsampled instead of every level's."""
    out, start = proj.bias.view(1, -1, 1, 1), 0
    for f in levels:
        y = conv1x1(f, proj.weight[:, start:start + f.shape[1]])
        start += f.shape[1]
        out = out + (y if y.shape[-2:] == size else F.interpolate(y, size=size, mode="bilinear", align_corners=True))
    return out


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
            load_checked(net, read_state_file(path), path)
            self.weights_source = str(path)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.out_channels = 64 + 64 + 128 + 256
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def pyramid(self, images: Float[Tensor, "V 3 H W"]) -> list[Tensor]:
        """conv1 (64 ch at 1/2), layer1 (64 at 1/4), layer2 (128 at 1/8), layer3 (256 at 1/16)."""
        x = (images - self.mean) / self.std
        f0 = self.stem(x)
        f1 = self.layer1(self.pool(f0))
        f2 = self.layer2(f1)
        return [f0, f1, f2, self.layer3(f2)]

    def forward(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V 512 (H+1)//2 (W+1)//2"]:
        f0, *rest = self.pyramid(images)
        up = [F.interpolate(f, size=f0.shape[-2:], mode="bilinear", align_corners=True) for f in rest]
        return torch.cat([f0, *up], dim=1)

    def projected(self, images: Float[Tensor, "V 3 H W"], proj: nn.Conv2d) -> Tensor:
        """``proj(self(images))`` for a 1x1 ``proj``, each level projected before it is upsampled."""
        levels = self.pyramid(images)
        return project_then_upsample(levels, proj, levels[0].shape[-2:])


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

    def forward(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V 768 H//2 W//2"]:
        H, W = images.shape[-2:]
        return F.interpolate(self._tokens(images), size=(H // 2, W // 2), mode="bilinear", align_corners=True)

    def _tokens(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V 768 h w"]:
        """Blocks 9 and 11 (1-based) of the normalised images padded to a multiple of 8, at 1/8."""
        H, W = images.shape[-2:]
        x = F.pad((images - self.mean) / self.std, (0, (-W) % 8, 0, (-H) % 8))
        return torch.cat(list(self.vit.get_intermediate_layers(x, n=[8, 10], reshape=True)), dim=1)

    def projected(self, images: Float[Tensor, "V 3 H W"], proj: nn.Conv2d) -> Tensor:
        """``proj(self(images))`` for a 1x1 ``proj``, projected before it is upsampled."""
        H, W = images.shape[-2:]
        return project_then_upsample([self._tokens(images)], proj, (H // 2, W // 2))


class PoseNetworkEncoder(nn.Module):
    """A frozen 2D pose network (MediaPipe Pose) whose BODY_25 heatmaps are the human features.

    No parameters and no gradient. The network runs on the source photographs as the distillation hands them to the
    teacher: at the stored resolution when the batch's images are scaled (``MultiViewBatch.src_photos``), its
    keypoints scaled to the images and their heatmaps drawn there. In training mode an image's keypoints come from
    the teacher's keypoint cache when it has seen the same pixels before (keyed by its bytes, in memory and on disk
    between runs, written by the distillation's runs of the same teacher too: :mod:`ghnerf.base.keypoint_cache`),
    since training revisits the same source photographs; in eval mode the network always runs, so measured render
    times include it.
    """

    wants_unmasked = True  # the network was trained on photographs, not background-zeroed crops
    out_channels = 25

    def __init__(self, pretrained: str):
        super().__init__()
        from teachers.mediapipe_pose import MediaPipeTeacher

        if pretrained not in ("imagenet", "bundled", "auto"):
            raise ConfigError(f"the mediapipe encoder uses the model bundled in the mediapipe wheel; pretrained must "
                              f"be 'bundled' (or the preset default), not {pretrained!r}")
        self.teacher = MediaPipeTeacher()
        self.weights_source = f"{self.teacher.version} (bundled, frozen), sha256 {self.teacher.weights_digest[:16]}.."

    def _keypoints(self, photo: np.ndarray) -> np.ndarray:
        """(25, 3) keypoints of one uint8 photograph (from the cache while training)."""
        if self.training:
            return self.teacher.cached_keypoints(photo)
        return self.teacher.predict([TeacherInput("source view", photo, None)])[0].keypoints

    @torch.no_grad()
    def heatmaps_and_keypoints(self, images: Float[Tensor, "V 3 H W"], photos: SourcePhotos | None = None) -> tuple[
            Float[Tensor, "V 25 H//2 W//2"], Float[np.ndarray, "V 25 3"]]:
        """The network's heatmaps (at half resolution) and its BODY_25 keypoints (x, y, confidence; pixels of
        ``images``), run on ``photos`` when given (the images before scaling), else on the images themselves."""
        H, W = images.shape[-2:]
        if photos is None:
            u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            photos = SourcePhotos(tuple(np.ascontiguousarray(im) for im in u8), 1.0)
        elif len(photos.images) != len(images):
            raise ValueError(f"{len(photos.images)} source photographs for {len(images)} source images")
        keypoints = np.stack([self._keypoints(photo) for photo in photos.images])
        keypoints[:, :, :2] *= photos.scale
        maps = torch.from_numpy(np.stack([self.teacher.heatmaps(kp, H, W) for kp in keypoints])).to(images.device)
        return F.interpolate(maps, size=(H // 2, W // 2), mode="bilinear", align_corners=False), keypoints

    def forward(self, images: Float[Tensor, "V 3 H W"], photos: SourcePhotos | None = None) -> Float[
            Tensor, "V 25 H//2 W//2"]:
        return self.heatmaps_and_keypoints(images, photos)[0]


def build_encoder(name: str, pretrained: str) -> nn.Module | None:
    """The encoder ``name`` with its weights (``pretrained="auto"``: the local ones when present, else random)."""
    if name == "none":
        return None
    if name not in ("resnet18", "resnet34", "dino", "mediapipe"):
        raise ConfigError(f"unknown encoder {name!r}; choose none, resnet18, resnet34, dino or mediapipe")
    pretrained, missing = resolve_pretrained(name, pretrained)
    encoder = (PoseNetworkEncoder(pretrained) if name == "mediapipe" else DinoEncoder(pretrained) if name == "dino"
               else ResNetEncoder(name, pretrained))
    if missing is not None:
        encoder.weights_source = random_init_note(missing)
    return encoder
