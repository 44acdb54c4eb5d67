"""Train/test splits of subjects, frames and cameras.

ZJU-MoCap defaults follow the GHNeRF supplement §1.2: train on CoreView 315, 377,
387, 390, 394, 393; test on 313 and 386; the first 600 frames; cameras divided
equally between training and testing (alternating, so test views lie between
training views). Datasets without those names (RenderPeople, synthetic) hold out
``test_fraction`` of the subjects, chosen by a seeded shuffle.
"""

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

ZJU_TRAIN = ("CoreView_315", "CoreView_377", "CoreView_387", "CoreView_390", "CoreView_394", "CoreView_393")
ZJU_TEST = ("CoreView_313", "CoreView_386")


class SplitConfig(BaseModel):
    """How to split a dataset (one source of defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_frames: int = Field(600, gt=0, description="use only the first N frames of each subject")
    test_fraction: float = Field(0.12, gt=0, lt=1, description="held-out subject share when no named split applies")
    seed: int = 0


@dataclass(frozen=True)
class Split:
    train_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]
    frames: range
    train_cameras: tuple[int, ...]
    test_cameras: tuple[int, ...]


def split_subjects(subjects: list[str], cfg: SplitConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) subject names."""
    if any(s in ZJU_TRAIN + ZJU_TEST for s in subjects):
        return (tuple(s for s in subjects if s in ZJU_TRAIN), tuple(s for s in subjects if s in ZJU_TEST))
    if len(subjects) < 2:
        return tuple(subjects), ()
    order = np.random.default_rng(cfg.seed).permutation(len(subjects))
    n_test = max(1, int(round(cfg.test_fraction * len(subjects))))
    test = {subjects[i] for i in order[:n_test]}
    return tuple(s for s in subjects if s not in test), tuple(s for s in subjects if s in test)


def split_cameras(num_cameras: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Cameras divided equally: even indices train, odd indices test."""
    return tuple(range(0, num_cameras, 2)), tuple(range(1, num_cameras, 2))


def make_split(subjects: list[str], num_frames: int, num_cameras: int, cfg: SplitConfig | None = None) -> Split:
    cfg = cfg or SplitConfig()
    train, test = split_subjects(subjects, cfg)
    cam_train, cam_test = split_cameras(num_cameras)
    return Split(train, test, range(min(num_frames, cfg.max_frames)), cam_train, cam_test)
