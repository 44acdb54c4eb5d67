"""The one record type every dataset reader produces.

A :class:`MultiViewFrame` is one time instant of one subject seen by several
calibrated cameras; each camera is a :class:`CameraView`. Paths are absolute;
cameras are in metres (units are converted in the readers, nowhere else).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera

# Folder beside the real layout holding ground truth the real datasets have no place for
# (3D joints, depth, canonical surface coordinates, true 2D joints with visibility).
SIDE_DIR = "synthetic_gt"


@dataclass(frozen=True, eq=False)
class CameraView:
    """One camera of one frame.

    Attributes:
        name: camera name as in the dataset ("Camera_B1", "Camera (1)", "camera0000").
        index: 0-based camera index in the dataset's calibration.
        image_path: RGB image.
        mask_paths: foreground masks that exist for this image (their union is the mask).
        camera: calibration (K, R, T in metres, D) and raw image size.
        joints2d: (25, 3) BODY_25 (x, y, confidence) in *undistorted* pixels, confidence 0 = missing; None if absent.
        depth_path: synthetic depth map (uint16 PNG, millimetres, 0 = background), or None.
        surface_path: synthetic surface-coordinate file (npz), or None.
    """

    name: str
    index: int
    image_path: Path
    mask_paths: tuple[Path, ...]
    camera: Camera
    joints2d: Float[np.ndarray, "25 3"] | None = None
    depth_path: Path | None = None
    surface_path: Path | None = None


@dataclass(frozen=True, eq=False)
class MultiViewFrame:
    """One frame of one subject from every camera.

    Attributes:
        subject: subject / sequence name.
        frame_index: 0-based position in the dataset's frame list.
        frame_id: the frame number encoded in the file names (1-based for CoreView_313/315).
        views: one :class:`CameraView` per camera, in calibration order.
        joints3d: (25, 3) BODY_25 world joints in metres, when the dataset has them.
        bounds: (2, 3) min / max corner of the body's vertices in metres, when available.
        vertices_path: the per-frame body vertex file used for ``bounds``.
        annotation_paths: files holding this frame's calibration and 2D-joint annotations
            (hashed into the lineage of every target computed from them).
    """

    subject: str
    frame_index: int
    frame_id: int
    views: tuple[CameraView, ...]
    joints3d: Float[np.ndarray, "25 3"] | None = None
    bounds: Float[np.ndarray, "2 3"] | None = None
    vertices_path: Path | None = None
    annotation_paths: tuple[Path, ...] = ()

    def view(self, name_or_index: str | int) -> CameraView:
        for v in self.views:
            if v.name == name_or_index or v.index == name_or_index:
                return v
        raise KeyError(name_or_index)


@dataclass(frozen=True)
class SubjectSummary:
    """What ``ghnerf data inspect`` reports for one subject."""

    name: str
    cameras: int
    frames: int
    image_size: tuple[int, int]  # (H, W)
