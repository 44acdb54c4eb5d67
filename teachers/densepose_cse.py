"""``densepose-cse``: detectron2's DensePose CSE predictor as an optional dense-pose teacher.

detectron2 (with the DensePose project) is not installed by ``make install``;
docs/optional-teachers.md has the recipe and says where the config and weights come
from. Without the packages or the files, constructing :class:`DensePoseCSETeacher`
raises ``TeacherUnavailable`` naming what is missing; it never runs with random weights.

Per view (API: ../shared/reference/formats.md §5, facebookresearch/detectron2
``projects/DensePose``): ``DefaultPredictor`` on the image (BGR, detectron2's
default ``INPUT.FORMAT``); of the detected people the highest-scoring one gives
``pred_densepose`` (a ``DensePoseEmbeddingPredictorOutput``: ``embedding``
[N, 16, S, S], ``coarse_segm`` [N, 2, S, S], box-relative) and ``pred_boxes`` (XYXY,
image pixels). Embedding and segmentation are resampled bilinearly into the box, as
``densepose/modeling/cse/utils.py`` (``get_closest_vertices_mask_from_ES``) does with
``F.interpolate``, but sampled directly at the centres of our stride-``s`` cells; the
mask is ``argmax(segm) > 0`` inside the box. Everything off the mask is zero / False.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jaxtyping import Bool, Float
from scipy.ndimage import map_coordinates

from teachers.base import (CSE_DIM, TargetKind, TeacherError, TeacherInput, TeacherOutput, TeacherUnavailable,
                           sha256_files)

RECIPE = "docs/optional-teachers.md"


def paste_box_embedding(embedding: Float[np.ndarray, "D S S"], segm: Float[np.ndarray, "K S S"],
                        box_xyxy: Sequence[float], height: int, width: int,
                        stride: int = 1) -> tuple[Float[np.ndarray, "D h w"], Bool[np.ndarray, "h w"]]:
    """Paste box-relative DensePose maps into an image-sized canvas of stride-``stride`` cells.

    Coordinates: our cell (i, j) is centred on image pixel ``(j * stride + (stride - 1) / 2, i * stride + ...)``
    with pixel centres at integers (as in :class:`~ghnerf.base.keypoint_codec.HeatmapCodec`). detectron2 boxes are
    continuous coordinates in which pixel k spans [k, k + 1), so that centre is ``+ 0.5`` there. A cell whose
    centre is inside the box ``[x0, x1) x [y0, y1)`` takes the bilinear value of the box maps at that point,
    the box edges being the outer edges of the S x S map (``F.interpolate(..., mode="bilinear")`` with
    ``align_corners=False``, edge values repeated); for an integer box at stride 1 this equals detectron2's
    resize-to-box and paste at ``[y0:y1, x0:x1]``.

    Args:
        embedding: (D, S, S) box-relative embedding.
        segm: (K, S, S) box-relative coarse segmentation scores (K = 2: background, person).
        box_xyxy: (x0, y0, x1, y1) in detectron2's continuous image coordinates.
        height, width: image size in pixels.
        stride: image pixels per canvas cell.
    Returns:
        cse (D, h, w) float32 with h, w = ceil(height / stride), ceil(width / stride), zero off the mask; and
        mask (h, w) bool, ``argmax(segm) > 0`` at cells inside the box.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    seg = np.asarray(segm, dtype=np.float64)
    if emb.ndim != 3 or seg.ndim != 3 or emb.shape[1:] != seg.shape[1:]:
        raise TeacherError(f"embedding {emb.shape} and segmentation {seg.shape} must be (D, S, S) and (K, S, S)")
    h, w = -(-height // stride), -(-width // stride)
    cse = np.zeros((emb.shape[0], h, w), np.float32)
    mask = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if not (x1 > x0 and y1 > y0):
        return cse, mask
    cx = np.arange(w) * stride + (stride - 1) / 2 + 0.5  # cell centres in detectron2's continuous coordinates
    cy = np.arange(h) * stride + (stride - 1) / 2 + 0.5
    ix = np.flatnonzero((cx >= x0) & (cx < x1))
    iy = np.flatnonzero((cy >= y0) & (cy < y1))
    if ix.size == 0 or iy.size == 0:
        return cse, mask
    sh, sw = emb.shape[1:]
    # map sample coordinates (pixel centres at integers, align_corners=False); mode="nearest" repeats edge values
    u = (cx[ix] - x0) / (x1 - x0) * sw - 0.5
    v = (cy[iy] - y0) / (y1 - y0) * sh - 0.5
    gv, gu = np.meshgrid(v, u, indexing="ij")

    def sample(maps: np.ndarray) -> np.ndarray:
        return np.stack([map_coordinates(m, [gv, gu], order=1, mode="nearest") for m in maps])

    inside = sample(seg).argmax(axis=0) > 0
    box_emb = sample(emb) * inside
    cse[:, iy[:, None], ix[None, :]] = box_emb
    mask[iy[:, None], ix[None, :]] = inside
    return cse, mask


class DensePoseCSETeacher:
    """DensePose CSE (detectron2) per view: the best person's 16-d embedding pasted into the image.

    Attributes:
        stride: image pixels per embedding cell.
        version: ``detectron2-<version>-densepose-cse-<config name>``.
        weights_digest: sha256 of the model weights file.
    """

    name = "densepose-cse"
    needs: tuple[str, ...] = ()
    kinds = (TargetKind.CSE,)

    def __init__(self, config_file: Path, weights: Path, stride: int = 2, device: str | None = None):
        """Build the predictor from a local config and weights file.

        Args:
            config_file: a DensePose CSE config, e.g. ``densepose_rcnn_R_50_FPN_s1x.yaml`` from
                ``projects/DensePose/configs/cse/`` (its ``_BASE_`` files must sit next to it, as in the checkout).
            weights: the matching model file, e.g. ``model_final_c4ea5f.pkl``, downloaded on a machine with network.
            stride: image pixels per embedding cell (the same grid as the heatmap codec's).
            device: "cpu", "cuda", ... (default: CUDA if available).
        Raises:
            TeacherUnavailable: detectron2 / DensePose are not installed or a file is absent.
            TeacherError: the config is not a CSE config with 16-d embeddings.
        """
        try:
            import detectron2
            import torch
            from densepose import add_densepose_config
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError as exc:
            raise TeacherUnavailable(f"detectron2 with DensePose is not installed ({exc}); follow {RECIPE} to build "
                                     "detectron2 and projects/DensePose from a git checkout") from exc
        config_file, weights = Path(config_file).expanduser(), Path(weights).expanduser()
        absent = [f"{what} {p}" for what, p in (("config file", config_file), ("weights file", weights))
                  if not p.is_file()]
        if absent:
            raise TeacherUnavailable(
                f"DensePose CSE {' and '.join(absent)} not found: the config comes from detectron2's "
                "projects/DensePose/configs/cse/ (e.g. densepose_rcnn_R_50_FPN_s1x.yaml, with its Base-*.yaml next to "
                "it), the weights are the matching model_final_*.pkl (e.g. model_final_c4ea5f.pkl) downloaded on a "
                f"machine with network; see {RECIPE}")
        if stride < 1:
            raise TeacherError(f"stride must be >= 1 (got {stride})")
        cfg = get_cfg()
        add_densepose_config(cfg)
        try:
            cfg.merge_from_file(str(config_file))
        except FileNotFoundError as exc:
            raise TeacherUnavailable(f"DensePose config {config_file} refers to a file that is missing ({exc}); keep "
                                     f"the whole projects/DensePose/configs/ folder together ({RECIPE})") from exc
        except Exception as exc:  # yacs / fvcore: unknown keys, bad yaml
            raise TeacherError(f"could not read DensePose config {config_file}: {exc}") from exc
        if cfg.MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME != "DensePoseEmbeddingPredictor":
            raise TeacherError(f"{config_file} is not a DensePose CSE config "
                               f"(PREDICTOR_NAME {cfg.MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME})")
        if cfg.MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBED_SIZE != CSE_DIM:
            raise TeacherError(f"{config_file} has EMBED_SIZE {cfg.MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBED_SIZE}, "
                               f"expected {CSE_DIM}")
        # Building the model loads each mesh embedder's INIT_FILE (an https URL in the human configs), which would
        # download. The trained vertex features and embeddings are in the model checkpoint (prefix
        # roi_heads.embedder.) and loaded with it; this teacher uses only the per-pixel embeddings anyway.
        for spec in cfg.MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBEDDERS.values():
            spec.INIT_FILE = ""
        cfg.MODEL.WEIGHTS = str(weights.resolve())
        cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg.freeze()
        try:
            self._predictor = DefaultPredictor(cfg)
        except Exception as exc:  # detectron2 raises assorted errors for a wrong or corrupt checkpoint
            raise TeacherError(f"could not build DensePose CSE from {config_file} and {weights}: {exc}") from exc
        self._torch = torch
        self.stride = int(stride)
        self.version = f"detectron2-{detectron2.__version__}-densepose-cse-{config_file.stem}"
        self.weights_digest = sha256_files([weights])

    def _best_person(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """Run the predictor on an RGB image.

        Returns:
            None when nobody is detected, else the highest-scoring person's embedding (16, S, S), coarse
            segmentation (2, S, S), box (4,) XYXY and score, as numpy arrays.
        """
        with self._torch.no_grad():
            instances = self._predictor(np.ascontiguousarray(image[..., ::-1]))["instances"].to("cpu")
        if len(instances) == 0 or not instances.has("pred_densepose"):
            return None
        k = int(instances.scores.argmax())
        dp = instances.pred_densepose
        return (dp.embedding[k].numpy(), dp.coarse_segm[k].numpy(), instances.pred_boxes.tensor[k].numpy(),
                float(instances.scores[k]))

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        """CSE embedding and mask for each view.

        Args:
            batch: views with (H, W, 3) uint8 RGB images.
        Returns:
            one TeacherOutput per view: cse (16, h, w) float32 and cse_mask (h, w) bool with h, w =
            ceil(H / stride), ceil(W / stride); extras ``detected`` and, when detected, ``score`` and ``box``.
        """
        out = []
        for item in batch:
            h, w = item.image.shape[:2]
            best = self._best_person(item.image)
            if best is None:
                hh, ww = -(-h // self.stride), -(-w // self.stride)
                out.append(TeacherOutput(cse=np.zeros((CSE_DIM, hh, ww), np.float32), cse_mask=np.zeros((hh, ww), bool),
                                         stride=self.stride, extras={"detected": False}))
                continue
            emb, seg, box, score = best
            cse, mask = paste_box_embedding(emb, seg, box, h, w, self.stride)
            out.append(TeacherOutput(cse=cse, cse_mask=mask, stride=self.stride,
                                     extras={"detected": True, "score": score, "box": [float(v) for v in box]}))
        return out
