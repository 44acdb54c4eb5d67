"""Side-by-side video panels of one rendered view: RGB | heatmap overlay | skeleton | CSE colours."""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, UInt8

from ghnerf.base.errors import ConfigError
from ghnerf.eval.metrics import openpose_keypoints
from ghnerf.base.viz import draw_skeleton, embedding_colours, heatmap_overlay

OVERLAYS = ("none", "heatmaps", "skeleton", "cse", "all")


@dataclass(frozen=True)
class PanelChoice:
    """Which panels follow the RGB one."""

    heatmaps: bool
    skeleton: bool
    cse: bool

    @classmethod
    def parse(cls, overlay: str, has_heatmaps: bool, has_cse: bool) -> "PanelChoice":
        """``all``: every panel the model can fill; a named panel the model cannot fill is an error."""
        if overlay not in OVERLAYS:
            raise ConfigError(f"unknown --overlay {overlay!r}; choose one of {', '.join(OVERLAYS)}")
        if overlay == "all":
            return cls(has_heatmaps, has_heatmaps, has_cse)
        if overlay in ("heatmaps", "skeleton") and not has_heatmaps:
            raise ConfigError(f"--overlay {overlay} needs a student with a heatmap head; this run has none "
                              "(use --overlay none or cse)")
        if overlay == "cse" and not has_cse:
            raise ConfigError("--overlay cse needs a student with a CSE head (+cse config); this run has none")
        return cls(overlay == "heatmaps", overlay == "skeleton", overlay == "cse")

    @property
    def count(self) -> int:
        return 1 + self.heatmaps + self.skeleton + self.cse


def to_u8(image: Float[np.ndarray, "H W 3"]) -> UInt8[np.ndarray, "H W 3"]:
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def compose_panels(rgb: Float[np.ndarray, "H W 3"], heatmaps: Float[np.ndarray, "J H W"] | None,
                   cse: Float[np.ndarray, "D H W"] | None, box: np.ndarray, choice: PanelChoice,
                   keypoints: Float[np.ndarray, "J 3"] | None = None) -> UInt8[np.ndarray, "H Wp 3"]:
    """The chosen panels side by side, (H, count * W, 3) uint8.

    Args:
        keypoints: 2D keypoints for the skeleton panel (default: decoded from ``heatmaps`` the OpenPose way,
            :func:`ghnerf.eval.metrics.openpose_keypoints`); missing joints (NaN) are not drawn.
    """
    base = to_u8(rgb)
    tiles = [base]
    if choice.heatmaps:
        tiles.append(heatmap_overlay(base, heatmaps))
    if choice.skeleton:
        kp = openpose_keypoints(heatmaps) if keypoints is None else keypoints
        tiles.append(draw_skeleton(base, np.nan_to_num(kp), radius=max(2, base.shape[0] // 64)))
    if choice.cse:
        tiles.append(embedding_colours(base, cse, box))
    return np.concatenate(tiles, axis=1)
