"""``auto`` pretrained weights: the local files when present, otherwise train without them, said and recorded.

``pretrained="auto"`` (the default) loads the encoder's ImageNet / DINO weights when
they are in the local caches (``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``,
``resnet34-b627a593.pth``, the Hugging Face cache for DINO) and otherwise starts the
encoder from a random init; ``perceptual="auto"`` uses the LPIPS-VGG term with the
paper's weight when ``vgg16-397923af.pth`` is there and leaves it out otherwise. An
explicit ``imagenet`` or weight still insists on the file (and names it when missing).
:func:`resolve_auto` turns ``auto`` into those concrete values before a run, with
one line to show and a record for run.json, every checkpoint and every report.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ghnerf.base.errors import WeightsNotFoundError
from ghnerf.student.config import AUTO, FROZEN_ENCODERS, PERCEPTUAL_WEIGHT, StudentConfig

HYPOTHESIS_TEACHER_NOTE = "; hypothesis teacher: "  # joins the encoder's weights and a hypothesis teacher's network

DINO_MODEL = "vit_small_patch8_224.dino"
VGG16_FILE = "vgg16-397923af.pth"


def torch_hub_checkpoint(filename: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _hf_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or
                Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")


def dino_cache_folder() -> Path:
    """Where the Hugging Face cache keeps the DINO weights."""
    return _hf_cache() / f"models--timm--{DINO_MODEL}"


def dino_cache_file() -> Path:
    """The DINO weights in the Hugging Face cache, looked up without any network access."""
    from huggingface_hub import try_to_load_from_cache

    repo = f"timm/{DINO_MODEL}"
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename, cache_dir=_hf_cache())
        if isinstance(found, str):
            return Path(found)
    where = dino_cache_folder()
    raise WeightsNotFoundError(
        f"DINO ViT-S/8 weights not found in the Hugging Face cache ({where}); run `huggingface-cli download {repo}` "
        "on a machine with network and copy that cache folder here (HF_HOME), or pass --pretrained PATH to "
        "model.safetensors, or --pretrained none for a random init")


def resnet_weights_file(arch: str) -> tuple[Path, str]:
    """(where ``--pretrained imagenet`` looks for ``arch``'s ImageNet weights, the URL to download them from)."""
    import torchvision

    enum = getattr(torchvision.models, f"ResNet{arch[6:]}_Weights").IMAGENET1K_V1
    return torch_hub_checkpoint(Path(enum.url).name), enum.url


@dataclass(frozen=True)
class AutoWeights:
    """What ``auto`` became.

    Attributes:
        config: the config with concrete ``pretrained`` and perceptual weight.
        encoder_missing: the encoder weights ``--pretrained auto`` looked for and did not find (random init).
        vgg_missing: the VGG16 weights ``--perceptual-weight auto`` looked for and did not find (no LPIPS term).
        resumed_record: on ``--resume``, the record of the checkpoint the run continues from (it wins).
    """

    config: StudentConfig
    encoder_missing: Path | None = None
    vgg_missing: Path | None = None
    resumed_record: dict | None = None

    def as_resumed(self, requested: StudentConfig, started: StudentConfig, meta: dict) -> "AutoWeights":
        """On ``--resume``, ``auto`` stays what it became when the run started (files added or removed since change
        nothing), and so does its record; explicit values are kept, to be compared with the checkpoint's."""
        config, encoder_missing, vgg_missing = self.config, self.encoder_missing, self.vgg_missing
        if requested.pretrained == AUTO:
            config, encoder_missing = replace(config, pretrained=started.pretrained), None
        if requested.losses.perceptual == AUTO:
            config = replace(config, losses=replace(config.losses, perceptual=started.losses.perceptual))
            vgg_missing = None
        record = {k: meta[k] for k in ("pretrained_weights", "perceptual_loss") if k in meta}
        return AutoWeights(config, encoder_missing, vgg_missing, record)

    def record(self, pretrained_weights: str) -> dict:
        """``pretrained_weights`` and ``perceptual_loss`` for run.json, every checkpoint and every report."""
        if self.encoder_missing is not None:  # the encoder's part; a hypothesis teacher's stays
            _, sep, teacher = pretrained_weights.partition(HYPOTHESIS_TEACHER_NOTE)
            pretrained_weights = random_init_note(self.encoder_missing) + sep + teacher
        weight = self.config.losses.perceptual
        if self.vgg_missing is not None:
            perceptual = f"off: --perceptual-weight auto found no VGG16 weights at {self.vgg_missing}"
        else:
            perceptual = f"LPIPS-VGG, weight {weight}" if weight > 0 else "off (weight 0)"
        return {"pretrained_weights": pretrained_weights, "perceptual_loss": perceptual, **(self.resumed_record or {})}

    def notice(self) -> str | None:
        """The one line to show at the start of a run when weights were missing, else None."""
        missing = [p for p in (self.encoder_missing, self.vgg_missing) if p is not None]
        if not missing:
            return None
        went = ([f"a randomly initialised {self.config.encoder} encoder"] if self.encoder_missing else []) + (
            ["no perceptual loss"] if self.vgg_missing else [])
        return (f"weights: not found locally: {', '.join(map(str, missing))}; training with {' and '.join(went)} "
                "(recorded in run.json and every checkpoint; put the files there to use them)")


def random_init_note(missing: Path) -> str:
    """How a random init chosen by ``auto`` is recorded."""
    return f"none (random init: --pretrained auto found no {missing})"


def encoder_weights_file(encoder: str) -> Path:
    """Where ``imagenet`` / ``auto`` find ``encoder``'s weights (for DINO, the cache folder when absent)."""

    if encoder != "dino":
        return resnet_weights_file(encoder)[0]
    try:
        return dino_cache_file()
    except WeightsNotFoundError:
        return dino_cache_folder()


def vgg_weights_file() -> Path:

    return torch_hub_checkpoint(VGG16_FILE)


def resolve_pretrained(encoder: str, pretrained: str) -> tuple[str, Path | None]:
    """(concrete ``pretrained`` for ``encoder``, the weights file ``auto`` looked for and did not find, or None)."""
    if pretrained != AUTO:
        return pretrained, None
    if encoder == "none":
        return "none", None
    if encoder in FROZEN_ENCODERS:
        return "bundled", None
    path = encoder_weights_file(encoder)
    return ("imagenet", None) if path.is_file() else ("none", path)


def resolve_auto(cfg: StudentConfig, patch: int = 1) -> AutoWeights:
    """Concrete ``pretrained`` and perceptual weight for ``cfg`` on this machine (``patch`` 0: no perceptual term).

    Only ``auto`` values are looked up; explicit ones are kept (and checked where they are loaded).
    """
    pretrained, encoder_missing = resolve_pretrained(cfg.encoder, cfg.pretrained)
    weight, vgg_missing = cfg.losses.perceptual, None
    if patch == 0:
        weight = 0.0
    elif weight == AUTO:
        vgg = vgg_weights_file()
        weight = PERCEPTUAL_WEIGHT if vgg.is_file() else 0.0
        vgg_missing = None if vgg.is_file() else vgg
    config = replace(cfg, pretrained=pretrained, losses=replace(cfg.losses, perceptual=float(weight)))
    return AutoWeights(config, encoder_missing, vgg_missing)
