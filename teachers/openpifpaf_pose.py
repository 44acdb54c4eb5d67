"""``openpifpaf``: the product card's pose teacher, as an optional extra (see docs/optional-teachers.md).

Runs ``openpifpaf.Predictor`` with a *local* checkpoint (names such as
``shufflenetv2k16`` would download, impossible offline), takes the CIF head's
confidence channel (17 x 5 x H' x W' fields, channel 1 = confidence; field cell ->
image pixel via the head stride and the preprocessing offset/scale), resamples each
COCO-17 confidence map onto our heatmap grid, and maps COCO-17 -> BODY_25 (EasyMocap
``coco17tobody25``: Neck / MidHip = mean of shoulders / hips with the min confidence;
feet stay missing). Keypoints come from the highest-scoring decoded annotation.
API details: ../shared/reference/formats.md §6 (openpifpaf v0.13.11 source).
"""

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates

from ghnerf.body25 import JOINT_INDEX as J
from ghnerf.body25 import NUM_JOINTS
from ghnerf.codecs.keypoints import HeatmapCodec, empty_keypoints
from teachers.base import TargetKind, TeacherInput, TeacherOutput, TeacherUnavailable, sha256_files

# EasyMocap COCO17_IN_BODY25: BODY_25 index of each COCO-17 keypoint.
COCO17_IN_BODY25 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
RECIPE = "docs/optional-teachers.md"


def coco17_to_body25(kpts17: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(17, 3) COCO keypoints (x, y, conf) -> (25, 3) BODY_25 and missing flags (feet always missing)."""
    kp = empty_keypoints()
    for c, b in enumerate(COCO17_IN_BODY25):
        if kpts17[c, 2] > 0 and np.isfinite(kpts17[c, :2]).all():
            kp[b] = kpts17[c]
    for b, (p, q) in ((J["Neck"], (J["RShoulder"], J["LShoulder"])), (J["MidHip"], (J["RHip"], J["LHip"]))):
        if kp[p, 2] > 0 and kp[q, 2] > 0:
            kp[b, :2] = 0.5 * (kp[p, :2] + kp[q, :2])
            kp[b, 2] = min(kp[p, 2], kp[q, 2])
    return kp, kp[:, 2] <= 0


def coco17_maps_to_body25(maps17: np.ndarray) -> np.ndarray:
    """(17, h, w) confidence maps -> (25, h, w): Neck / MidHip as the min of their two parents, feet zero."""
    out = np.zeros((NUM_JOINTS, *maps17.shape[1:]), np.float32)
    for c, b in enumerate(COCO17_IN_BODY25):
        out[b] = maps17[c]
    out[J["Neck"]] = np.minimum(out[J["RShoulder"]], out[J["LShoulder"]])
    out[J["MidHip"]] = np.minimum(out[J["RHip"]], out[J["LHip"]])
    return np.clip(out, 0, 1)


@contextmanager
def _full_unpickling():
    """openpifpaf checkpoints are pickled modules; torch >= 2.6 loads weights only unless told otherwise.
    Only do this for a checkpoint file the user chose."""
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


class OpenPifPafTeacher:
    name = "openpifpaf"
    needs: tuple[str, ...] = ()
    kinds = (TargetKind.HEATMAP, TargetKind.KEYPOINTS)

    def __init__(self, checkpoint: Path, codec: HeatmapCodec | None = None):
        try:
            import openpifpaf
        except ImportError as exc:
            raise TeacherUnavailable(f"openpifpaf is not installed; see {RECIPE} for the recipe") from exc
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise TeacherUnavailable(f"openpifpaf checkpoint {checkpoint} not found; download e.g. the "
                                     f"shufflenetv2k16 checkpoint on a machine with network and pass its path ({RECIPE})")
        self.codec = codec or HeatmapCodec()
        self.version = f"openpifpaf-{openpifpaf.__version__}"
        self.weights_digest = sha256_files([checkpoint])
        with _full_unpickling():
            self._pred = openpifpaf.Predictor(checkpoint=str(checkpoint))
        metas = [m for m in self._pred.model_cpu.head_metas if isinstance(m, openpifpaf.headmeta.Cif)]
        self._cif_index, self._stride = metas[0].head_index, metas[0].stride

    def _cif_confidence(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        import PIL.Image

        proc, _, meta = self._pred.preprocess(PIL.Image.fromarray(image), [], {})
        fields = self._pred.processor.fields_batch(self._pred.model, proc[None], device=self._pred.device)[0]
        cif = np.asarray(fields[self._cif_index].cpu() if hasattr(fields[self._cif_index], "cpu")
                         else fields[self._cif_index])
        return cif[:, 1], meta

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        out = []
        for item in batch:
            h, w = item.image.shape[:2]
            conf, meta = self._cif_confidence(item.image)  # (17, H', W') over the padded, rescaled input
            hh, ww = self.codec.heatmap_size(h, w)
            # heatmap cell centre -> image pixel -> padded-input pixel -> field cell
            xs = self.codec.to_pixels(np.arange(ww, dtype=np.float64))
            ys = self.codec.to_pixels(np.arange(hh, dtype=np.float64))
            scale, offset = np.asarray(meta["scale"], float), np.asarray(meta["offset"], float)
            fx = (xs * scale[0] - offset[0]) / self._stride
            fy = (ys * scale[1] - offset[1]) / self._stride
            gy, gx = np.meshgrid(fy, fx, indexing="ij")
            maps17 = np.stack([map_coordinates(c, [gy, gx], order=1, mode="constant") for c in conf])
            preds, _, _ = self._pred.numpy_image(item.image)
            if preds:
                best = max(preds, key=lambda a: a.score)
                kp, missing = coco17_to_body25(np.asarray(best.data, dtype=np.float64))
            else:
                kp, missing = empty_keypoints(), np.ones(NUM_JOINTS, bool)
            out.append(TeacherOutput(heatmaps=coco17_maps_to_body25(maps17), keypoints=kp, missing=missing,
                                     stride=self.codec.stride, extras={"detected": bool(preds)}))
        return out
