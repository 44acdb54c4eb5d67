"""3D joints from the student's heatmap volume: occupancy-weighted heatmaps queried on a grid around the subject,
summed over a frame's views, their peaks (evaluation's volumetric MPJPE, ``export --joints3d volumetric``).

A frame's volume is summed view by view (:class:`HeatmapVolume`), so a caller that renders each view first adds it
with the source encoding it already has and keeps nothing of the view after it.
"""

from collections.abc import Iterable

import numpy as np
import torch
from jaxtyping import Float

from ghnerf.eval.metrics import mpjpe, volume_peaks
from ghnerf.student.model import GHNeRF
from ghnerf.student.model_io import MultiViewBatch, SourceEncoding

VOXEL_M = 0.04  # grid spacing
BOX_MARGIN_M = 0.1  # around the body's box


class HeatmapVolume:
    """The occupancy-weighted heatmap volume of one frame: ``add`` each view, then :meth:`joints`.

    Args:
        bounds: (2, 3) the frame's body box (world metres); the grid covers it with :data:`BOX_MARGIN_M` around.
    """

    def __init__(self, model: GHNeRF, bounds: Float[np.ndarray, "2 3"], device: torch.device):
        self.model, self.device = model, device
        self.lo = np.asarray(bounds[0]) - BOX_MARGIN_M
        hi = np.asarray(bounds[1]) + BOX_MARGIN_M
        axes = [np.arange(a, b + 1e-9, VOXEL_M) for a, b in zip(self.lo, hi)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
        self.shape = grid.shape[:3]
        self.points = torch.from_numpy(grid.reshape(-1, 3)).float().to(device)
        self.total = torch.zeros(len(self.points), model.cfg.num_joints, device=device)
        self.views = 0

    def add(self, batch: MultiViewBatch, encoding: SourceEncoding | None = None) -> None:
        """One view's occupancy x heatmaps at the grid (``encoding``: its sources' :meth:`GHNeRF.encode`, when the
        caller has it; else they are encoded here)."""
        occ, heat = self.model.query_points(batch.to(self.device), self.points, encoding)
        self.total += occ[:, None] * heat
        self.views += 1

    def joints(self) -> Float[np.ndarray, "J 4"]:
        """(J, 4) x, y, z (metres) and score of each joint's peak in the views' mean volume."""
        if not self.views:
            raise ValueError("no view added to the heatmap volume")
        volume = (self.total / self.views).T.reshape(self.model.cfg.num_joints, *self.shape).cpu().numpy()
        return volume_peaks(volume, self.lo, VOXEL_M)


def volumetric_joints(model: GHNeRF, examples: Iterable, device: torch.device) -> np.ndarray | None:
    """(25, 4) 3D joints (x, y, z, score) from the heatmap volume of one frame's views (each encodes its sources);
    None without the frame's body box or a heatmap head."""
    examples = list(examples)
    bounds = examples[0].bounds
    if bounds is None or model.heatmap_head is None:
        return None
    volume = HeatmapVolume(model, bounds, device)
    for ex in examples:
        volume.add(ex.batch)
    return volume.joints()


def joints_error(joints: np.ndarray | None, truth: Float[np.ndarray, "J 3"]) -> float | None:
    """MPJPE of volumetric joints against the frame's true 3D joints; None without joints or a finite error."""
    if joints is None:
        return None
    e = mpjpe(joints[:, :3], np.asarray(truth, dtype=np.float64))
    return float(e) if np.isfinite(e) else None
