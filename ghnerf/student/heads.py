"""The student's rendered heads beside colour, declared once: the model renders each into
``LevelOutputs.heads[head]``; the losses, the training targets, inference and the panels find it here.

A new rendered head is one :class:`Head` member, one :data:`HEADS` entry (its config switch, channel count, loss
weight and target mask) and its module in :class:`~ghnerf.student.model.GHNeRF`.
"""

from dataclasses import dataclass
from enum import StrEnum


class Head(StrEnum):
    """A rendered head: its key in ``LevelOutputs.heads``, in the per-ray targets and in the inference maps."""

    HEATMAPS = "heatmaps"  # (R, J) joint heatmaps in [0, 1], BODY_25 order
    CSE = "cse"  # (R, D) continuous surface embedding


@dataclass(frozen=True)
class HeadSpec:
    """How a head is switched on, sized, weighed and masked.

    Attributes:
        enabled: the :class:`~ghnerf.student.config.StudentConfig` flag that builds it.
        channels: the StudentConfig attribute holding its channel count.
        loss: the :class:`~ghnerf.student.config.LossWeights` field weighing it (also the loss term's name).
        mask: the per-ray target entry that masks its loss: ``joint_valid`` (J,) masks channels, ``cse_mask``
            (R,) masks rays.
        mask_channels: whether ``mask`` masks channels (else rays).
    """

    enabled: str
    channels: str
    loss: str
    mask: str
    mask_channels: bool


HEADS: dict[Head, HeadSpec] = {
    Head.HEATMAPS: HeadSpec("heatmap_head", "num_joints", "heatmap", "joint_valid", mask_channels=True),
    Head.CSE: HeadSpec("cse_head", "cse_dim", "cse", "cse_mask", mask_channels=False),
}
