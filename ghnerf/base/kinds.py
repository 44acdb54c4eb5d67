"""Vocabularies shared by teachers, storage and the student, declared once."""

from enum import StrEnum


class TargetKind(StrEnum):
    """What a teacher target holds (the ``kind`` column of a shard row)."""

    HEATMAP = "heatmap"  # (J, h, w) joint heatmaps, BODY_25 order
    KEYPOINTS = "keypoints"  # (J, 3) x, y, confidence
    CSE = "cse"  # (D, h, w) continuous surface embedding with a mask


class HeatmapSource(StrEnum):
    """Where a training or evaluation example's joint heatmap targets come from."""

    DATASET = "dataset"  # Gaussians at the dataset's own 2D joints (the paper's ZJU-MoCap setting)
    STORE = "store"  # a pose teacher's shards
    NONE = "none"  # no heatmap targets (a model without the heatmap head)
