"""The teacher protocol: what every teacher adapter takes and gives.

A teacher maps a batch of undistorted views to targets in one common format:

* ``heatmaps``: (25, h, w) float32 in [0, 1], BODY_25 order, at the codec's stride;
* ``keypoints``: (25, 3) x, y in undistorted image pixels and confidence; missing
  joints have NaN xy and confidence 0 (and ``missing`` set);
* ``cse``: (16, h, w) float32 embedding with a foreground mask (h, w).

Third-party types never leave ``teachers/``. ``weights_digest`` is the sha256 of
the weight files the teacher loaded ("none" for analytic teachers) and goes into
every shard's lineage.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from jaxtyping import Bool, Float, UInt8

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import GHNeRFError

CSE_DIM = 16


class TargetKind(str, Enum):
    HEATMAP = "heatmap"
    KEYPOINTS = "keypoints"
    CSE = "cse"


class TeacherError(GHNeRFError):
    """A teacher cannot run here (missing package or weights) or produced an invalid output."""


class TeacherUnavailable(TeacherError):
    """The teacher's package or weight file is not present; the message says what to install or where to put what."""


@dataclass(frozen=True, eq=False)
class TeacherInput:
    """One undistorted view given to a teacher.

    Attributes:
        key: "subject/frame_id/camera" (for messages and rows).
        image: (H, W, 3) uint8 RGB, undistorted.
        camera: pinhole camera of the undistorted image.
        mask: (H, W) bool foreground, if the dataset has one.
        joints2d: (25, 3) dataset 2D joints (undistorted pixels, conf 0 = missing), if any.
        surface: (H, W, 3) synthetic canonical surface coordinates (NaN off-body), if any.
    """

    key: str
    image: UInt8[np.ndarray, "H W 3"]
    camera: Camera
    mask: Bool[np.ndarray, "H W"] | None = None
    joints2d: Float[np.ndarray, "25 3"] | None = None
    surface: Float[np.ndarray, "H W 3"] | None = None


@dataclass(frozen=True, eq=False)
class TeacherOutput:
    """Targets a teacher produced for one view (each field present only for the kinds it makes).

    Attributes:
        heatmaps: (25, h, w) float32 in [0, 1].
        keypoints: (25, 3) x, y (undistorted pixels), confidence; NaN xy and 0 confidence when missing.
        missing: (25,) bool, joints the teacher did not give.
        cse: (16, h, w) float32 embedding.
        cse_mask: (h, w) bool foreground of the embedding.
        stride: image pixels per heatmap / embedding cell.
    """

    heatmaps: Float[np.ndarray, "25 h w"] | None = None
    keypoints: Float[np.ndarray, "25 3"] | None = None
    missing: Bool[np.ndarray, "25"] | None = None
    cse: Float[np.ndarray, "16 h w"] | None = None
    cse_mask: Bool[np.ndarray, "h w"] | None = None
    stride: int = 1
    extras: dict = field(default_factory=dict)

    def kinds(self) -> tuple[TargetKind, ...]:
        out = []
        if self.heatmaps is not None:
            out.append(TargetKind.HEATMAP)
        if self.keypoints is not None:
            out.append(TargetKind.KEYPOINTS)
        if self.cse is not None:
            out.append(TargetKind.CSE)
        return tuple(out)


@runtime_checkable
class Teacher(Protocol):
    """What every teacher adapter provides."""

    name: str
    version: str
    weights_digest: str
    kinds: tuple[TargetKind, ...]
    needs: tuple[str, ...]  # optional TeacherInput fields it reads: "joints2d", "surface"

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        """Targets for each view of ``batch``, in order."""
        ...


def sha256_files(paths: Sequence[str | Path]) -> str:
    """sha256 over the bytes of ``paths`` (sorted by name), the digest recorded in lineage."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
