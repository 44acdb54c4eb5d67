"""``openpifpaf``: the openpifpaf 0.13.11 pose network as an optional heatmap + keypoint teacher.

openpifpaf is not installed by ``make install``; docs/optional-teachers.md has the
recipe and says where the checkpoint comes from. Without the package or the
checkpoint file, constructing :class:`OpenPifPafTeacher` raises
``TeacherUnavailable`` naming what is missing; it never runs with random weights.

Per view (API: ../shared/reference/formats.md §6, openpifpaf v0.13.11 sources
``predictor.py``, ``decoder/decoder.py``, ``network/heads.py``, ``annotation.py``):

* the predictor's preprocessing (``CenterPadTight(16)``, optional rescale) gives the
  network input and ``meta`` (``offset``, ``scale``);
* one network pass (``processor.fields_batch``) gives the head fields; the CIF head
  is ``(17, 5, H', W')`` and channel 1 is the joint confidence (sigmoid). Field cell
  ``i`` lies on padded-input pixel ``i * stride``; an original image pixel ``x`` lies
  on padded-input pixel ``x * scale - offset`` (the inverse of
  ``Annotation.inverse_transform``). Each COCO-17 confidence map is resampled
  bilinearly at the centres of our heatmap cells (``codec.heatmap_size(H, W)``);
* the same fields are decoded (``processor(fields)``) and mapped back to image
  pixels with ``inverse_transform(meta)``; the highest-scoring annotation gives the
  keypoints;
* COCO-17 -> BODY_25 follows EasyMocap's ``coco17tobody25`` (formats.md §3): Neck
  and MidHip are the mean of the shoulders / hips with the *min* confidence, the six
  foot joints are missing. Neck and MidHip have no CIF field, so their heatmaps are
  the codec's Gaussian at the synthesised keypoint with peak = its confidence.

The CIF confidence lives on the head's stride (8 or 16 image pixels), so these
heatmaps are coarse compared with the codec's Gaussians: they are the teacher's
own belief, not a re-rendering of its keypoints.
"""

import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from jaxtyping import Bool, Float
from scipy.ndimage import map_coordinates

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.body25 import COCO17_IN_BODY25, COCO17_NAMES, NUM_JOINTS
from ghnerf.base.keypoint_codec import HeatmapCodec, empty_keypoints
from teachers.base import (TargetKind, TeacherError, TeacherInput, TeacherOutput, TeacherUnavailable,
                           sha256_files)

RECIPE = "docs/optional-teachers.md"

# BODY_25 joints synthesised as the mean of two BODY_25 joints (confidence = min of the two).
MIDPOINTS: dict[int, tuple[int, int]] = {J["Neck"]: (J["RShoulder"], J["LShoulder"]),
                                         J["MidHip"]: (J["RHip"], J["LHip"])}
CIF_CONFIDENCE_CHANNEL = 1
_LOAD_LOCK = threading.Lock()


def coco17_to_body25(kpts17: Float[np.ndarray, "17 3"]) -> tuple[Float[np.ndarray, "25 3"], Bool[np.ndarray, "25"]]:
    """COCO-17 keypoints -> BODY_25 (EasyMocap ``coco17tobody25``).

    Args:
        kpts17: (17, 3) x, y (image pixels), confidence in COCO order; confidence <= 0 or
            non-finite xy means missing.
    Returns:
        keypoints (25, 3) float64: x, y, confidence, missing joints NaN xy and confidence 0;
        Neck / MidHip = mean xy of the two shoulders / hips with the min of their confidences
        (missing unless both are present); the six foot joints are always missing.
        missing (25,) bool.
    """
    src = np.asarray(kpts17, dtype=np.float64)
    if src.shape != (len(COCO17_NAMES), 3):
        raise TeacherError(f"expected (17, 3) COCO keypoints, got {src.shape}")
    kp = empty_keypoints()
    for c, b in enumerate(COCO17_IN_BODY25):
        if src[c, 2] > 0 and np.isfinite(src[c]).all():
            kp[b] = src[c]
    for b, (p, q) in MIDPOINTS.items():
        if kp[p, 2] > 0 and kp[q, 2] > 0:
            kp[b, :2] = 0.5 * (kp[p, :2] + kp[q, :2])
            kp[b, 2] = min(kp[p, 2], kp[q, 2])
    return kp, kp[:, 2] <= 0


def coco17_maps_to_body25(maps17: Float[np.ndarray, "17 h w"], keypoints25: Float[np.ndarray, "25 3"],
                          codec: HeatmapCodec, height: int, width: int) -> Float[np.ndarray, "25 h w"]:
    """COCO-17 confidence maps -> BODY_25 heatmaps on the codec grid.

    Args:
        maps17: (17, h, w) per-joint confidence on the grid ``codec.heatmap_size(height, width)``.
        keypoints25: (25, 3) BODY_25 keypoints (from :func:`coco17_to_body25`); only Neck and MidHip are read.
        codec: the heatmap codec (stride, sigma).
        height, width: image size in pixels.
    Returns:
        (25, h, w) float32 in [0, 1]: each COCO map in its BODY_25 channel; Neck and MidHip the codec's
        Gaussian at the synthesised keypoint with peak = its confidence (zero when missing); feet zero.
    """
    h, w = codec.heatmap_size(height, width)
    maps17 = np.asarray(maps17, dtype=np.float32)
    if maps17.shape != (len(COCO17_NAMES), h, w):
        raise TeacherError(f"expected (17, {h}, {w}) confidence maps, got {maps17.shape}")
    out = np.zeros((NUM_JOINTS, h, w), np.float32)
    out[list(COCO17_IN_BODY25)] = maps17
    mids = list(MIDPOINTS)
    kp = np.asarray(keypoints25, dtype=np.float64)[mids]
    gauss, _ = codec.encode(kp, height, width, amplitude=kp[:, 2])
    out[mids] = gauss
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def field_to_heatmap_grid(field: Float[np.ndarray, "K Hf Wf"], field_stride: int, offset: Sequence[float],
                          scale: Sequence[float], codec: HeatmapCodec, height: int,
                          width: int) -> Float[np.ndarray, "K h w"]:
    """Resample openpifpaf field maps at the centres of our heatmap cells.

    Args:
        field: (K, Hf, Wf) maps; cell (i, j) lies on padded-input pixel (j * field_stride, i * field_stride).
        field_stride: padded-input pixels per field cell (the CIF head meta's ``stride``).
        offset, scale: the preprocessing ``meta['offset']`` and ``meta['scale']`` (x, y); an image pixel x is
            padded-input pixel ``x * scale - offset``.
        codec: our heatmap codec; cell (i, j) is centred on image pixel ``codec.to_pixels((j, i))``.
        height, width: original image size in pixels.
    Returns:
        (K, h, w) float32, bilinear, edge values beyond the field's border.
    """
    h, w = codec.heatmap_size(height, width)
    xs = codec.to_pixels(np.arange(w, dtype=np.float64))
    ys = codec.to_pixels(np.arange(h, dtype=np.float64))
    fx = (xs * float(scale[0]) - float(offset[0])) / field_stride
    fy = (ys * float(scale[1]) - float(offset[1])) / field_stride
    gy, gx = np.meshgrid(fy, fx, indexing="ij")
    field = np.asarray(field, dtype=np.float64)
    return np.stack([map_coordinates(f, [gy, gx], order=1, mode="nearest") for f in field]).astype(np.float32)


@contextmanager
def _full_unpickling() -> Iterator[None]:
    """Let ``torch.load`` unpickle a full module while openpifpaf loads the checkpoint.

    openpifpaf checkpoints are pickled ``nets.Shell`` modules and openpifpaf calls
    ``torch.load(path)`` without ``weights_only``; since torch 2.6 that defaults to
    weights-only and fails. ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (PyTorch
    "Miscellaneous Environment Variables") makes such calls unpickle fully; it is set
    only for the duration of the load and restored afterwards. Full unpickling runs
    code from the file: only for a checkpoint the user chose and trusts.
    """
    truthy = ("1", "y", "yes", "true")
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in truthy:
        raise TeacherUnavailable("TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, but openpifpaf checkpoints are pickled "
                                 f"modules that need full unpickling; unset it to use openpifpaf ({RECIPE})")
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with warnings.catch_warnings():  # torch's notice that the variable is in effect: intended here
            warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
            yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


class OpenPifPafTeacher:
    """openpifpaf CIF confidence -> BODY_25 heatmaps, best decoded pose -> BODY_25 keypoints, per view.

    Attributes:
        codec: heatmap codec (grid and Neck / MidHip Gaussians).
        version: ``openpifpaf-<version>``.
        weights_digest: sha256 of the checkpoint file.
    """

    name = "openpifpaf"
    needs: tuple[str, ...] = ()
    kinds = (TargetKind.HEATMAP, TargetKind.KEYPOINTS)

    def __init__(self, checkpoint: Path, codec: HeatmapCodec | None = None, device: str | None = None):
        """Load a local openpifpaf checkpoint.

        Args:
            checkpoint: a checkpoint file (e.g. the ``shufflenetv2k16`` one, downloaded on a machine with
                network; a bare name would make openpifpaf download it).
            codec: heatmap codec (default ``HeatmapCodec()``).
            device: torch device string ("cpu", "cuda", "cuda:1"); default: openpifpaf's choice (CUDA if present).
        Raises:
            TeacherUnavailable: openpifpaf is not installed or the checkpoint file is absent.
            TeacherError: the file is not a COCO-17 openpifpaf checkpoint.
        """
        try:
            import openpifpaf
            import PIL.Image
            import torch
        except ImportError as exc:
            raise TeacherUnavailable(f"openpifpaf is not installed ({exc}); follow {RECIPE} to install "
                                     "openpifpaf==0.13.11 into the project venv") from exc
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise TeacherUnavailable(
                f"openpifpaf checkpoint file {checkpoint} not found: download an openpifpaf 0.13 checkpoint (e.g. "
                "shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-7189450a.pkl) on a machine with "
                f"network, copy it to {checkpoint} or pass its path (see {RECIPE})")
        self.codec = codec or HeatmapCodec()
        self.version = f"openpifpaf-{openpifpaf.__version__}"
        self.weights_digest = sha256_files([checkpoint])
        # The environment variable and openpifpaf's Factory.checkpoint (a class attribute Predictor sets) are
        # process-wide; the distill flow builds one teacher per worker thread, so loads take turns.
        with _LOAD_LOCK:
            previous = openpifpaf.network.Factory.checkpoint
            try:
                with _full_unpickling():
                    # an absolute path never matches a name in openpifpaf.CHECKPOINT_URLS: nothing is downloaded
                    predictor = openpifpaf.Predictor(checkpoint=str(checkpoint.resolve()))
            except TeacherUnavailable:
                raise
            except Exception as exc:  # openpifpaf raises bare Exception; pickle / torch raise their own
                raise TeacherError(f"could not load openpifpaf checkpoint {checkpoint}: {exc}") from exc
            finally:
                openpifpaf.network.Factory.checkpoint = previous
        if device is not None:
            # Predictor.device is a class attribute; set it on this instance only and move the model there.
            predictor.device = torch.device(device)
            predictor.model = predictor.model_cpu.to(predictor.device)
        cifs = [m for m in predictor.model_cpu.head_metas
                if isinstance(m, openpifpaf.headmeta.Cif) and tuple(m.keypoints) == COCO17_NAMES]
        if not cifs:
            raise TeacherError(f"openpifpaf checkpoint {checkpoint} has no COCO-17 CIF head (heads: "
                               f"{[type(m).__name__ + ':' + m.name for m in predictor.model_cpu.head_metas]})")
        self._predictor = predictor
        self._cif_index = int(cifs[0].head_index)
        self._field_stride = int(cifs[0].stride)
        self._to_pil = PIL.Image.fromarray
        self._annotation_type = openpifpaf.Annotation

    @property
    def field_stride(self) -> int:
        """Padded-input pixels per CIF field cell (8 or 16 for the released checkpoints)."""
        return self._field_stride

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[float], dict]:
        """One network pass on an RGB image.

        Returns:
            CIF confidence (17, Hf, Wf) float32; decoded poses as (17, 3) arrays in image pixels and their scores;
            the preprocessing offset / scale as plain arrays.
        """
        pred = self._predictor
        proc, _, meta = pred.preprocess(self._to_pil(np.ascontiguousarray(image)), [], {})
        fields = pred.processor.fields_batch(pred.model, proc[None], device=pred.device)[0]
        cif = fields[self._cif_index]  # (17, 5, Hf, Wf), a CPU tensor (numpy if Decoder.torch_decoder is off)
        cif = cif.numpy() if hasattr(cif, "numpy") else cif
        conf = np.array(cif[:, CIF_CONFIDENCE_CHANNEL], dtype=np.float32)  # a copy: the decoder reads the fields next
        anns = [a.inverse_transform(meta) for a in pred.processor(fields)
                if isinstance(a, self._annotation_type) and a.data.shape == (len(COCO17_NAMES), 3)]
        poses = [np.asarray(a.data, dtype=np.float64) for a in anns]
        scores = [float(a.score) for a in anns]
        geometry = {"offset": np.asarray(meta["offset"], np.float64), "scale": np.asarray(meta["scale"], np.float64)}
        return conf, poses, scores, geometry

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        """Heatmaps and keypoints for each view.

        Args:
            batch: views with (H, W, 3) uint8 RGB images.
        Returns:
            one TeacherOutput per view: heatmaps (25, h, w) float32 in [0, 1] on ``codec.heatmap_size(H, W)``,
            keypoints (25, 3) in image pixels (NaN xy, confidence 0 when missing), missing (25,), stride, and
            extras ``detected`` (a pose was decoded), ``score`` (its openpifpaf score), ``people`` (poses decoded).
        """
        out = []
        for item in batch:
            h, w = item.image.shape[:2]
            conf, poses, scores, geom = self._run(item.image)
            maps17 = field_to_heatmap_grid(conf, self._field_stride, geom["offset"], geom["scale"], self.codec, h, w)
            if poses:
                best = int(np.argmax(scores))
                kp, missing = coco17_to_body25(poses[best])
            else:
                kp, missing = empty_keypoints(), np.ones(NUM_JOINTS, bool)
            heatmaps = coco17_maps_to_body25(maps17, kp, self.codec, h, w)
            extras = {"detected": bool(poses), "score": max(scores) if scores else 0.0, "people": len(poses)}
            out.append(TeacherOutput(heatmaps=heatmaps, keypoints=kp, missing=missing, stride=self.codec.stride,
                                     extras=extras))
        return out
