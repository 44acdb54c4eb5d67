"""Random warps of the source views and their heatmap targets for the 2D pretraining (ours, after mmpose's
top-down recipe: ``RandomFlip``, ``RandomBBoxTransform`` (scale, rotation) and a brightness jitter).

A teacher-free student learns its own pose network from the training subjects' photographs only (the
benchmark's: 30 subjects x 8 frames x 8 cameras). Each pretraining step sees a few views as they are; a pose
network trained that way fits those people, poses and framings. Warping the image and its targets together
(rotation, scale, a mirror with the left and right joints exchanged) and varying the brightness shows it the same
labels in framings and lighting it did not see, as every 2D pose network's training does.

The warp is a similarity about the image centre, applied to the images (bilinear, black outside: the masked
images' background) and to the heatmap targets at their own resolution (the same normalised coordinates), so a
target's peak moves exactly as its joint; a mirrored view's heatmaps exchange the channels of
:data:`ghnerf.base.body25.BODY25_LR_PAIRS`.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from ghnerf.base.body25 import BODY25_MIRROR


@dataclass(frozen=True)
class Augment2D:
    """Ranges of the random warp (each view draws its own).

    Attributes:
        rotation_deg: rotation drawn uniformly from [-rotation_deg, rotation_deg].
        scale: zoom factor drawn log-uniformly from [1 / scale, scale] (> 1: the person appears larger).
        mirror: probability of a horizontal mirror (left and right joints exchanged).
        brightness: pixel values multiplied by a factor drawn from [1 - brightness, 1 + brightness], then clipped
            to [0, 1].
    """

    rotation_deg: float = 30.0
    scale: float = 1.25
    mirror: float = 0.5
    brightness: float = 0.2


@dataclass(frozen=True)
class ViewWarps:
    """Per view: rotation (radians, counter-clockwise in the image as shown), zoom, mirror, brightness factor.

    Attributes:
        angle, zoom, gain: (V,) float; mirror: (V,) bool.
    """

    angle: Float[Tensor, "V"]
    zoom: Float[Tensor, "V"]
    mirror: Bool[Tensor, "V"]
    gain: Float[Tensor, "V"]

    @staticmethod
    def draw(views: int, ranges: Augment2D, gen: torch.Generator) -> "ViewWarps":
        """Random warps of ``views`` views within ``ranges`` (reproducible with ``gen``)."""
        u = torch.rand((4, views), generator=gen, dtype=torch.float64)
        return ViewWarps(angle=(2 * u[0] - 1) * math.radians(ranges.rotation_deg),
                         zoom=torch.exp((2 * u[1] - 1) * math.log(ranges.scale)),
                         mirror=u[2] < ranges.mirror,
                         gain=1 + (2 * u[3] - 1) * ranges.brightness)

    def _inverse_in_pixels(self) -> Float[Tensor, "V 2 2"]:
        """The inverse of ``p -> zoom R(angle) M p`` in pixel units about the image centre: ``M R(-angle) / zoom``,
        with ``R(t) = [[cos t, sin t], [-sin t, cos t]]`` counter-clockwise on screen (y down) and ``M = diag(flip,
        1)`` the mirror."""
        c, s = torch.cos(self.angle), torch.sin(self.angle)
        flip = torch.where(self.mirror, -1.0, 1.0).to(c)
        return torch.stack([torch.stack([c * flip, -s * flip], -1), torch.stack([s, c], -1)], -2) / self.zoom[:, None,
                                                                                                              None]

    def output_to_input(self, height: int, width: int) -> Float[Tensor, "V 2 3"]:
        """``F.affine_grid``'s matrices: normalised output coordinates to the input's (align_corners=False).

        An input point ``p`` (pixel units about the image centre) moves to ``zoom R(angle) M p``, so an output point
        reads the input at that map's inverse; the normalised matrices are that inverse conjugated by the half-size
        scaling ``D``, ``D^-1 A D``, so square and non-square images rotate without shear.
        """
        a = self._inverse_in_pixels()
        half = torch.tensor([width / 2, height / 2], dtype=a.dtype)
        a = a * half[None, None, :] / half[None, :, None]
        return torch.cat([a, torch.zeros(len(a), 2, 1, dtype=a.dtype)], -1)

    def transform_points(self, xy: Float[Tensor, "V N 2"], height: int, width: int) -> Float[Tensor, "V N 2"]:
        """Where input pixels ``xy`` (x, y; pixel centres at integers) land in the warped views of that size."""
        a = self._inverse_in_pixels()
        centre = torch.tensor([width / 2, height / 2], dtype=a.dtype) - 0.5
        return torch.linalg.solve(a, (xy.to(a) - centre).transpose(1, 2)).transpose(1, 2) + centre

    def apply(self, images: Float[Tensor, "V 3 H W"], heatmaps: Float[Tensor, "V J h w"],
              valid: Bool[Tensor, "V J"]) -> tuple[Tensor, Tensor, Tensor]:
        """The warped images (brightness applied, clipped to [0, 1]), heatmaps and joint validity (mirrored views'
        left and right channels exchanged)."""
        images = _warp(images, self.output_to_input(*images.shape[-2:]))
        images = (images * self.gain.to(images)[:, None, None, None]).clamp(0, 1)
        heatmaps = _warp(heatmaps, self.output_to_input(*heatmaps.shape[-2:]))
        order = torch.tensor(BODY25_MIRROR, device=heatmaps.device)
        mirrored = self.mirror.to(heatmaps.device)
        heatmaps = torch.where(mirrored[:, None, None, None], heatmaps[:, order], heatmaps)
        valid = torch.where(mirrored[:, None].to(valid.device), valid[:, order.to(valid.device)], valid)
        return images, heatmaps, valid


def _warp(maps: Float[Tensor, "V C H W"], theta: Float[Tensor, "V 2 3"]) -> Float[Tensor, "V C H W"]:
    grid = F.affine_grid(theta.to(maps), list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
