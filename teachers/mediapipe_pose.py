"""``mediapipe``: the pretrained MediaPipe Pose model bundled in the ``mediapipe==0.10.14`` wheel.

Only ``model_complexity=1`` ships in the wheel (0 and 2 download at start-up, which
is impossible offline). Landmarks (33, normalised) -> BODY_25 following EasyMocap's
``mediapipe_wrapper.py`` (../shared/reference/formats.md §7 and §3): Neck = mean of
the shoulders, MidHip = mean of the hips (confidence = min of the two);
BigToe <- foot_index, Heel <- heel. The small toes have no MediaPipe landmark and
are flagged missing (EasyMocap duplicates foot_index there; we do not invent them).
Confidence = landmark visibility; heatmap peaks are scaled by it.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.keypoint_cache import KeypointCache, image_key
from ghnerf.base.keypoint_codec import HeatmapCodec, empty_keypoints
from ghnerf.base.kinds import TargetKind
from teachers.base import TeacherInput, TeacherOutput, TeacherUnavailable, sha256_files

# BODY_25 joint <- MediaPipe landmark index (single-landmark joints).
MP33_FOR_BODY25: dict[int, int] = {
    J["Nose"]: 0, J["RShoulder"]: 12, J["RElbow"]: 14, J["RWrist"]: 16, J["LShoulder"]: 11, J["LElbow"]: 13,
    J["LWrist"]: 15, J["RHip"]: 24, J["RKnee"]: 26, J["RAnkle"]: 28, J["LHip"]: 23, J["LKnee"]: 25,
    J["LAnkle"]: 27, J["REye"]: 5, J["LEye"]: 2, J["REar"]: 8, J["LEar"]: 7, J["LBigToe"]: 31, J["LHeel"]: 29,
    J["RBigToe"]: 32, J["RHeel"]: 30,
}
# Joints synthesised as the mean of two BODY_25 joints.
MIDPOINTS: dict[int, tuple[int, int]] = {J["Neck"]: (J["RShoulder"], J["LShoulder"]),
                                         J["MidHip"]: (J["RHip"], J["LHip"])}
# Joints MediaPipe defines (23 of 25: no small toes), from the two maps above.
DEFINED_JOINTS: tuple[int, ...] = tuple(sorted({*MP33_FOR_BODY25, *MIDPOINTS}))
MODEL_FILES = ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite")


MIN_VISIBILITY = 0.2


def mediapipe33_to_body25(landmarks: np.ndarray, width: int, height: int,
                          min_visibility: float = MIN_VISIBILITY) -> tuple[np.ndarray, np.ndarray]:
    """Map (33, 4) normalised landmarks (x, y, z, visibility) to BODY_25 pixels.

    Landmarks below ``min_visibility`` or outside the image are missing (MediaPipe
    extrapolates joints beyond the frame; no heatmap can hold them).

    Returns:
        keypoints (25, 3) x, y (pixels), confidence; missing joints NaN xy and 0 confidence; and missing (25,).
    """
    kp = empty_keypoints()
    for b, m in MP33_FOR_BODY25.items():
        x, y, _, vis = landmarks[m]
        px, py = x * width, y * height
        if vis >= min_visibility and -0.5 <= px <= width - 0.5 and -0.5 <= py <= height - 0.5:
            kp[b] = (px, py, vis)
    for b, (p, q) in MIDPOINTS.items():
        if kp[p, 2] > 0 and kp[q, 2] > 0:
            kp[b, :2] = 0.5 * (kp[p, :2] + kp[q, :2])
            kp[b, 2] = min(kp[p, 2], kp[q, 2])
    missing = kp[:, 2] <= 0
    return kp, missing


class MediaPipeTeacher:
    """MediaPipe Pose (BlazePose full) run independently on every view.

    Every image it runs on leaves its keypoints in the keypoint cache of its version, weights and settings
    (:mod:`ghnerf.base.keypoint_cache`, ``keypoint_cache``): a student whose frozen encoder is this network
    (``ghnerf-mediapipe*``) reads there the keypoints the distillation computed for the same photographs
    (:meth:`cached_keypoints`) instead of running the network again.
    """

    name = "mediapipe"
    needs: tuple[str, ...] = ()
    kinds = (TargetKind.HEATMAP, TargetKind.KEYPOINTS)
    joints = DEFINED_JOINTS  # BODY_25 indices this teacher can ever report

    def __init__(self, codec: HeatmapCodec | None = None, min_detection_confidence: float = 0.5):
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise TeacherUnavailable("mediapipe is not installed; run `make install` (it pins mediapipe==0.10.14)") \
                from exc
        root = Path(mp.__file__).parent
        files = [root / f for f in MODEL_FILES]
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            raise TeacherUnavailable(f"MediaPipe's bundled pose model is missing: {', '.join(absent)}; reinstall "
                                     "mediapipe==0.10.14 (the wheel ships model_complexity=1)")
        self.codec = codec or HeatmapCodec()
        self.version = f"mediapipe-{mp.__version__}-pose-full"
        self.weights_digest = sha256_files(files)
        # what its keypoints depend on besides the image (ghnerf.base.keypoint_cache)
        self.keypoint_namespace = (f"{self.version}-{self.weights_digest[:16]}-detection{min_detection_confidence}-"
                                   f"visibility{MIN_VISIBILITY}")
        self.keypoint_cache = KeypointCache(self.keypoint_namespace, NUM_JOINTS)
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                            min_detection_confidence=min_detection_confidence)

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        out = []
        for item in batch:
            h, w = item.image.shape[:2]
            result = self._pose.process(np.ascontiguousarray(item.image))
            if result.pose_landmarks is None:
                kp, missing = empty_keypoints(), np.ones(NUM_JOINTS, dtype=bool)
            else:
                lm = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark])
                kp, missing = mediapipe33_to_body25(lm, w, h)
            self.keypoint_cache.put(image_key(np.ascontiguousarray(item.image)), kp)
            out.append(TeacherOutput(heatmaps=self.heatmaps(kp, h, w), keypoints=kp, missing=missing,
                                     stride=self.codec.stride, extras={"detected": result.pose_landmarks is not None}))
        return out

    def cached_keypoints(self, image: np.ndarray) -> np.ndarray:
        """(25, 3) keypoints of a uint8 (H, W, 3) image: those this teacher (same version, weights and settings)
        recorded for the same pixels, in this run or an earlier one, else the network's."""
        keypoints = self.keypoint_cache.get(image_key(np.ascontiguousarray(image)))
        if keypoints is None:
            keypoints = self.predict([TeacherInput("image", image, None)])[0].keypoints
        return keypoints

    def heatmaps(self, keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
        """(25, h, w) heatmaps of (25, 3) keypoints of a ``height`` x ``width`` image, as :meth:`predict` draws
        them (peaks scaled by the confidence; missing joints empty)."""
        return self.codec.encode(np.nan_to_num(keypoints), height, width, amplitude=keypoints[:, 2])[0]

    def close(self) -> None:
        self._pose.close()
