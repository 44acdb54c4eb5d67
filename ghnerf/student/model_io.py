"""What the student network takes and gives: a target view with its source views, the source views' features
computed once, and the rendered rays of one cascade level (:class:`ghnerf.student.model.GHNeRF`).

The data side (:mod:`ghnerf.student.data`) builds batches and the inference side reads outputs without importing
the network itself.
"""

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from ghnerf.student.heads import Head


@dataclass(frozen=True, eq=False)
class SourcePhotos:
    """The source photographs as stored, before the image scale, for a frozen pose network to run on the pixels the
    distillation's teacher saw (and find its keypoints there: :mod:`ghnerf.base.keypoint_cache`).

    Attributes:
        images: per source view, (H0, W0, 3) uint8, undistorted.
        scale: the batch's image scale: a keypoint (x, y) of a photograph is (x * scale, y * scale) in the batch's
            images, as its intrinsics are scaled.
    """

    images: tuple[np.ndarray, ...]
    scale: float

    @property
    def nbytes(self) -> int:
        return sum(im.nbytes for im in self.images)


@dataclass(frozen=True, eq=False)
class MultiViewBatch:
    """One target view and its source views (tensors on the model's device).

    Attributes:
        src_images: (V, 3, H, W) RGB in [0, 1], undistorted, background zeroed.
        src_K: (V, 3, 3) intrinsics at (H, W).
        src_w2c: (V, 4, 4) world-to-camera, metres.
        tgt_K: (3, 3) target intrinsics at (H, W).
        tgt_w2c: (4, 4) target world-to-camera.
        near_far: (2,) scene depth range for the target (ENeRF: padded vertex box).
        src_images_unmasked: (V, 3, H, W) the source images with their background, for encoders that
            expect real photographs (the frozen pose network, which refuses a batch without them).
        src_photos: the source photographs before scaling when the image scale is not 1, else None (the
            unmasked images are the photographs then).
    """

    src_images: Tensor
    src_K: Tensor
    src_w2c: Tensor
    tgt_K: Tensor
    tgt_w2c: Tensor
    near_far: Tensor
    src_images_unmasked: Tensor | None = None
    src_photos: SourcePhotos | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.src_images.shape[-2:])

    def to(self, device) -> "MultiViewBatch":
        """This batch with its tensors on ``device`` (the photographs stay host arrays)."""
        return replace(self, **{f.name: value.to(device) for f in fields(self)
                                if isinstance(value := getattr(self, f.name), Tensor)})


@dataclass(frozen=True, eq=False)
class SourceEncoding:
    """Per-source-view features computed once per batch.

    Attributes:
        fpn: the three FPN levels.
        human: (V, human_projection_dim, H/2, W/2) projected human features, or None.
        pose_heatmaps: (V, J, H/2, W/2) the pose encoder's own heatmaps, kept for the ray evidence
            (``StudentConfig.ray_evidence_samples``), or None.
        joints3d: (J, 3) the pose encoder's source keypoints (teacher-free: the source heatmap head's, with
            ``StudentConfig.hypothesis_teacher``'s beside them) triangulated
            (NaN rows missing), for the joint hypotheses (``StudentConfig.joint_hypotheses``), or None.
    """

    fpn: tuple[Tensor, Tensor, Tensor]
    human: Tensor | None
    pose_heatmaps: Tensor | None = None
    joints3d: Tensor | None = None


@dataclass(frozen=True, eq=False)
class LevelOutputs:
    """Rendered rays of one cascade level.

    Attributes:
        uv: (R, 2) pixels at this level's render resolution ``render_size`` (H, W).
        rgb: (R, 3).
        heads: the rendered heads the model has (:mod:`ghnerf.student.heads`): ``Head.HEATMAPS`` (R, J),
            ``Head.CSE`` (R, 16).
        coord_error: mean squared error of the coordinate head against its query points (supplement
            §2.1: the head regresses each sample's own 3D position), or None.
        depth: (R,) rendered depth; acc: (R,) accumulated opacity.
        sample_depths: (R, S) sample depths; depth_near/depth_far: (R,) the ray's sampling interval.
        mvs_depth: (h, w) the cost volume's expected depth map (in eval mode, over the rendered rays' window of the
            last level's grid only, :mod:`ghnerf.student.volume_window`; outside it that of flat logits).
    """

    uv: Tensor
    render_size: tuple[int, int]
    rgb: Tensor
    heads: dict[Head, Tensor]
    coord_error: Tensor | None
    depth: Tensor
    acc: Tensor
    sample_depths: Tensor
    mvs_depth: Tensor

    @property
    def heatmaps(self) -> Tensor | None:
        """(R, J) rendered joint heatmaps, or None without the heatmap head."""
        return self.heads.get(Head.HEATMAPS)

    @property
    def cse(self) -> Tensor | None:
        """(R, 16) rendered surface embedding, or None without the CSE head."""
        return self.heads.get(Head.CSE)

    @staticmethod
    def cat(parts: list["LevelOutputs"]) -> "LevelOutputs":
        """The outputs of one level rendered in chunks of rays, joined."""
        def join(values: list[Tensor]) -> Tensor:
            return torch.cat(values)

        counts = torch.tensor([float(len(p.uv)) for p in parts])
        coord = (None if parts[0].coord_error is None else
                 sum(p.coord_error * c for p, c in zip(parts, counts)) / counts.sum())
        first = parts[0]
        tensors = {name: join([getattr(p, name) for p in parts])
                   for name in ("uv", "rgb", "depth", "acc", "sample_depths")}
        return LevelOutputs(render_size=first.render_size, heads={h: join([p.heads[h] for p in parts])
                                                                   for h in first.heads},
                            coord_error=coord, mvs_depth=first.mvs_depth, **tensors)
