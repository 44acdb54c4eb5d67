"""Train/test splits of subjects, frames and cameras.

ZJU-MoCap defaults follow the GHNeRF supplement §1.2: train on CoreView 315, 377,
387, 390, 394, 393; test on 313 and 386; the first 600 frames; cameras divided
equally between training and testing (alternating, so test views lie between
training views). Datasets without those names (RenderPeople, synthetic) hold out
``test_fraction`` of the subjects, chosen by a seeded shuffle.

A dataset of one subject (per-subject fine-tuning, as ENeRF does on ZJU-MoCap), or one whose subjects all go to
training, cannot hold out subjects: its test split holds out cameras instead, the test cameras of the training
subjects (``Split.held_out == "cameras"``).
"""

from dataclasses import dataclass
from typing import Literal

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
    held_out: Literal["subjects", "cameras"] = "subjects"  # "cameras": no test subject (one subject)

    def record(self) -> dict:
        """The split as recorded in run.json and checkpoints (plain values)."""
        return {"held_out": self.held_out, "train_subjects": list(self.train_subjects),
                "test_subjects": list(self.test_subjects), "train_cameras": list(self.train_cameras),
                "test_cameras": list(self.test_cameras)}

    def notice(self, dataset: str) -> str | None:
        """One line saying the test split holds out cameras (None when it holds out subjects)."""
        if self.held_out != "cameras":
            return None
        count = len(self.train_subjects)
        return (f"{dataset}: {count} subject{'s' if count > 1 else ''}, so the test split holds out cameras "
                f"{_indices(self.test_cameras)} of {', '.join(self.test_subjects)} (training cameras "
                f"{_indices(self.train_cameras)}; ENeRF's per-subject setting)")


def _indices(cameras: tuple[int, ...]) -> str:
    return ", ".join(map(str, cameras))


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


def cameras_for_sources(sources: int) -> int:
    """The fewest cameras whose split leaves every training camera ``sources`` other training cameras."""
    return 2 * sources + 1


def make_split(subjects: list[str], num_frames: int, num_cameras: int, cfg: SplitConfig | None = None) -> Split:
    """The split of a dataset; without a test subject (one subject), the test split holds out cameras of the
    training subjects."""
    cfg = cfg or SplitConfig()
    train, test = split_subjects(subjects, cfg)
    held_out = "subjects"
    if len(subjects) == 1 or (train and not test):
        train = test = tuple(subjects) if len(subjects) == 1 else train
        held_out = "cameras"
    cam_train, cam_test = split_cameras(num_cameras)
    return Split(train, test, range(min(num_frames, cfg.max_frames)), cam_train, cam_test, held_out)
