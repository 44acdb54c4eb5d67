"""``gt-joints``: Gaussian heatmaps from the dataset's own 2D joints (how the paper trains on ZJU-MoCap).

Joints the dataset lacks (confidence 0) stay all-zero and are flagged missing.
Every present joint peaks at 1, whatever its annotated confidence.
"""

from collections.abc import Sequence

import numpy as np

from ghnerf.base.keypoint_codec import HeatmapCodec
from teachers.base import TargetKind, TeacherError, TeacherInput, TeacherOutput


class GTJointsTeacher:
    name = "gt-joints"
    version = "1"
    weights_digest = "none"
    needs: tuple[str, ...] = ("joints2d",)
    kinds = (TargetKind.HEATMAP, TargetKind.KEYPOINTS)

    def __init__(self, codec: HeatmapCodec | None = None):
        self.codec = codec or HeatmapCodec()

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        out = []
        for item in batch:
            if item.joints2d is None:
                raise TeacherError(f"{item.key}: the dataset has no 2D joints for this view (ZJU 'kpts2d' or "
                                   "synthetic_gt/keypoints2d); use a pose teacher such as mediapipe instead")
            h, w = item.image.shape[:2]
            heatmaps, missing = self.codec.encode(item.joints2d, h, w)
            kp = np.asarray(item.joints2d, dtype=np.float64).copy()
            kp[missing, :2] = np.nan
            kp[missing, 2] = 0.0
            out.append(TeacherOutput(heatmaps=heatmaps, keypoints=kp, missing=missing, stride=self.codec.stride))
        return out
