"""The part of a level's cost volume that the rendered rays can see (evaluation only; ours).

At evaluation the fine level renders only the body box (``render_full_view``), yet ENeRF builds and regularises its
cost volume over the whole image. A voxel of the 3D U-Net's output depends only on the input voxels within its
reach (:data:`UNET_REACH`, measured by an impulse in ``tests/ghnerf/student/test_volume_window.py``), so the
volume over the rays' columns and rows, widened by that reach and by :data:`READ_MARGIN` voxels for the bilinear
reads, gives the same numbers at every voxel a ray reads, provided that

* BatchNorm uses its running statistics (eval mode: batch statistics would change with the volume's extent),
* the window starts at a multiple of the U-Net's total stride and ends at one or at the grid's edge, and the
  grid's size is a multiple of that stride (otherwise the U-Net resamples its upsampled volumes, ``_match``, and
  the resampling depends on the extent).

Only the (h, w) extent is cut; every depth plane stays.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ghnerf.student.geometry import pixel_grid

# How far (in voxels along h or w) an input voxel of the cost regularisation reaches in its outputs, per U-Net depth
# (``CostRegNet(deep=...)``): three stride-2 stages reach 30 voxels, ENeRF's shallower coarse U-Net 14.
UNET_REACH = {True: 30, False: 14}
# The U-Net's total stride per depth: a window must start on it to see the same strided grid as the whole volume.
UNET_STRIDE = {True: 8, False: 4}
# Voxels a bilinear read at a ray's pixel may touch beyond the cell its position falls in: the next cell, and one
# more either way for the rounding of the position (``lookup`` computes it in another order than here).
READ_MARGIN = 2


@dataclass(frozen=True)
class VolumeWindow:
    """Rows ``y0:y1`` and columns ``x0:x1`` of a level's (h, w) volume grid."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def crop(self, maps: Float[Tensor, "... h w"]) -> Float[Tensor, "... hc wc"]:
        return maps[..., self.y0:self.y1, self.x0:self.x1]

    def paste(self, window: Float[Tensor, "... hc wc"], size: tuple[int, int]) -> Float[Tensor, "... h w"]:
        """``window`` placed in a zero grid of ``size`` (h, w)."""
        full = window.new_zeros(*window.shape[:-2], *size)
        full[..., self.y0:self.y1, self.x0:self.x1] = window
        return full


def _span(lo: float, hi: float, cells: int, stride: int, margin: int) -> tuple[int, int]:
    """[start, end) on a grid of ``cells`` that holds the cells of [lo, hi] widened by ``margin`` cells either way,
    both ends on ``stride`` (or the grid's end)."""
    start = max(math.floor(lo) - margin, 0) // stride * stride
    end = min(math.floor(hi) + margin + 1, cells)
    return start, min(-(-end // stride) * stride, cells)


def volume_window(uv: Float[Tensor, "R 2"], render_size: tuple[int, int], grid_size: tuple[int, int],
                  deep: bool) -> VolumeWindow | None:
    """The window of a level's volume grid that rays at pixels ``uv`` (of an image of ``render_size`` (H, W), corners
    aligned with the grid of ``grid_size`` (h, w), as :func:`~ghnerf.student.samplers.lookup` reads it) can see
    through a U-Net of that depth, or None when it is the whole grid or a window could not give the same numbers."""
    (H, W), (h, w) = render_size, grid_size
    stride = UNET_STRIDE[deep]
    if len(uv) == 0 or h % stride or w % stride:
        return None
    margin = UNET_REACH[deep] + READ_MARGIN
    x = uv[:, 0] * ((w - 1) / max(W - 1, 1))
    y = uv[:, 1] * ((h - 1) / max(H - 1, 1))
    x0, x1 = _span(float(x.min()), float(x.max()), w, stride, margin)
    y0, y1 = _span(float(y.min()), float(y.max()), h, stride, margin)
    if (x0, x1, y0, y1) == (0, w, 0, h):
        return None
    return VolumeWindow(y0, y1, x0, x1)


def window_pixels(window: VolumeWindow, device: torch.device | None = None) -> Float[Tensor, "hc wc 2"]:
    """(x, y) of every cell of ``window`` on the whole grid: ``pixel_grid`` of the window, moved to its place
    (integers in float32, so the same values as the whole grid's there)."""
    return pixel_grid(*window.size, device) + torch.tensor([window.x0, window.y0], dtype=torch.float32, device=device)
