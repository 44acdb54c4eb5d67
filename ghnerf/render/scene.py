"""What ``render`` and ``export`` look at: one subject's frames, its capture cameras at the student's scale,
and the cameras allowed as source views (the training cameras of the dataset's split, as in training)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera, scaled
from ghnerf.base.errors import ConfigError
from ghnerf.data import make_split, open_dataset


def frame_indices(text: str, num_frames: int) -> list[int]:
    """0-based frame indices from ``START:STOP[:STEP]`` (Python slice, any part may be empty) or one index.

    Raises:
        ConfigError: not a slice or index, or no frame of the ``num_frames`` selected.
    """
    try:
        parts = [int(p) if p.strip() else None for p in text.split(":")]
        if len(parts) == 1:
            if parts[0] is None:
                raise ValueError
            parts = [parts[0], parts[0] + 1 if parts[0] != -1 else None]
        if len(parts) > 3 or (len(parts) == 3 and parts[2] == 0):
            raise ValueError
        chosen = list(range(num_frames))[slice(*parts)]
    except ValueError:
        raise ConfigError(f"--frames {text!r}: expected START:STOP[:STEP] or one frame index, e.g. 0:100:2")
    if not chosen:
        raise ConfigError(f"--frames {text!r} selects none of the subject's {num_frames} frames (0..{num_frames - 1})")
    return chosen


@dataclass(frozen=True, eq=False)
class Scene:
    """One subject of a dataset, prepared for rendering.

    Attributes:
        sequence: the reader's sequence (``frame(i)`` gives a MultiViewFrame).
        frames: chosen 0-based frame indices.
        scale: capture image size -> student image size.
        captures: the capture cameras, undistorted and scaled (calibration order).
        candidates: capture indices allowed as source views.
        source_views: source views per rendered view.
    """

    sequence: object
    frames: list[int]
    scale: float
    captures: list[Camera]
    candidates: list[int]
    source_views: int

    def body_centre(self) -> Float[np.ndarray, "3"]:
        """Mean over the chosen frames of the centre of the body's vertex box (metres)."""
        bounds = [self.sequence.frame(f).bounds for f in self.frames]
        if any(b is None for b in bounds):
            raise ConfigError(f"{self.sequence.name}: no body vertices to find the body centre (need new_vertices/ "
                              "or vertices/ <id>.npy)")
        return np.mean([b.mean(axis=0) for b in bounds], axis=0)


def open_scene(data: str | Path, subject: str, frames: str, scale: float, source_views: int,
               size: tuple[int, int] | None = None) -> Scene:
    """The scene of ``subject`` in dataset ``data``.

    Args:
        frames: the ``--frames`` text (:func:`frame_indices`).
        scale: image scale the student was trained at (used unless ``size`` is given).
        source_views: source views per rendered view.
        size: (H, W) of the rendered images; must keep the capture's aspect ratio.
    Raises:
        ConfigError: unknown subject, bad frames, a size of another aspect ratio, too few source cameras.
    """
    reader = open_dataset(data)
    names = reader.subjects()
    if subject not in names:
        raise ConfigError(f"{data}: no subject {subject!r}; the dataset has {', '.join(names)}")
    seq = reader.sequence(subject)
    chosen = frame_indices(frames, seq.num_frames)
    first = seq.frame(chosen[0])
    H0, W0 = first.views[0].camera.height, first.views[0].camera.width
    if size is not None:
        H, W = size
        scale = H / H0
        if H <= 0 or W <= 0 or abs(W0 * scale - W) > 0.5:
            raise ConfigError(f"--size {H} {W}: the captures are {H0}x{W0} (HxW); keep that aspect ratio, "
                              f"e.g. --size {H} {round(W0 * scale)}")
    first_subject = reader.sequence(names[0])
    candidates = list(make_split(names, first_subject.num_frames, first_subject.num_cameras).train_cameras)
    candidates = [c for c in candidates if c < len(first.views)]
    if len(candidates) < source_views:
        raise ConfigError(f"{data}: {subject} has {len(candidates)} source cameras, {source_views} needed "
                          "(lower --source-views)")
    return Scene(seq, chosen, scale, [scaled(v.camera, scale) for v in first.views], candidates, source_views)
