"""``densepose-cse``: detectron2's DensePose CSE predictor, as an optional extra (docs/optional-teachers.md).

Per view: ``DefaultPredictor`` on the image (BGR, as detectron2 expects), the
highest-scoring person's ``pred_densepose`` (``embedding`` [N, 16, S, S] and
``coarse_segm`` [N, 2, S, S]) and ``pred_boxes`` (XYXY); embedding and segmentation
are resized bilinearly into the box (as ``densepose/modeling/cse/utils.py`` does)
and pasted into an image-sized canvas at the codec stride; the mask is
``argmax(segm) > 0`` inside the box. API: ../shared/reference/formats.md §5.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from teachers.base import CSE_DIM, TargetKind, TeacherInput, TeacherOutput, TeacherUnavailable, sha256_files

RECIPE = "docs/optional-teachers.md"


def paste_box_embedding(embedding: np.ndarray, segm: np.ndarray, box_xyxy, height: int, width: int,
                        stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Paste a box-relative (D, S, S) embedding and (K, S, S) coarse segmentation into a (D, h, w) canvas.

    The canvas cell (i, j) is centred on image pixel (j * stride + (stride - 1) / 2, i * stride + ...) (pixel
    centres at integers, as everywhere in this product); detectron2 boxes are continuous coordinates where pixel k
    spans [k, k + 1), so that centre is at +0.5 there. A cell inside the box takes the bilinear value of the box
    maps. Returns (cse, mask).
    """
    h, w = -(-height // stride), -(-width // stride)
    cse = np.zeros((embedding.shape[0], h, w), np.float32)
    mask = np.zeros((h, w), bool)
    x0, y0, x1, y1 = [float(v) for v in box_xyxy]
    bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    cx = np.arange(w) * stride + (stride - 1) / 2 + 0.5  # in detectron2's continuous coordinates
    cy = np.arange(h) * stride + (stride - 1) / 2 + 0.5
    inside_x = (cx >= x0) & (cx < x1)
    inside_y = (cy >= y0) & (cy < y1)
    if not inside_x.any() or not inside_y.any():
        return cse, mask
    # normalised box coordinates in [-1, 1] (align_corners=False: the box edges are the map's outer edges)
    gx = (cx[inside_x] - x0) / bw * 2 - 1
    gy = (cy[inside_y] - y0) / bh * 2 - 1
    grid = torch.stack(torch.meshgrid(torch.tensor(gy), torch.tensor(gx), indexing="ij")[::-1], -1)[None].float()
    maps = torch.from_numpy(np.concatenate([embedding, segm]).astype(np.float32))[None]
    sampled = F.grid_sample(maps, grid, mode="bilinear", align_corners=False, padding_mode="border")[0].numpy()
    emb, seg = sampled[: embedding.shape[0]], sampled[embedding.shape[0]:]
    iy, ix = np.nonzero(inside_y)[0], np.nonzero(inside_x)[0]
    cse[:, iy[:, None], ix[None, :]] = emb
    mask[iy[:, None], ix[None, :]] = seg.argmax(0) > 0
    cse[:, ~mask] = 0
    return cse, mask


class DensePoseCSETeacher:
    name = "densepose-cse"
    needs: tuple[str, ...] = ()
    kinds = (TargetKind.CSE,)

    def __init__(self, config_file: Path, weights: Path, stride: int = 2, device: str | None = None):
        try:
            from densepose import add_densepose_config
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError as exc:
            raise TeacherUnavailable(f"detectron2 with DensePose is not installed; see {RECIPE}") from exc
        missing = [str(p) for p in (Path(config_file), Path(weights)) if not Path(p).is_file()]
        if missing:
            raise TeacherUnavailable(f"DensePose CSE files not found: {', '.join(missing)}; see {RECIPE} for the "
                                     "config (projects/DensePose/configs/cse/) and the model .pkl to download")
        cfg = get_cfg()
        add_densepose_config(cfg)
        cfg.merge_from_file(str(config_file))
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg.freeze()
        self._predictor = DefaultPredictor(cfg)
        import detectron2

        self.stride = stride
        self.version = f"detectron2-{detectron2.__version__}-densepose-cse-{Path(config_file).stem}"
        self.weights_digest = sha256_files([weights])

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        out = []
        for item in batch:
            h, w = item.image.shape[:2]
            with torch.no_grad():
                inst = self._predictor(np.ascontiguousarray(item.image[..., ::-1]))["instances"].to("cpu")
            if len(inst) == 0 or not inst.has("pred_densepose"):
                hh, ww = -(-h // self.stride), -(-w // self.stride)
                out.append(TeacherOutput(cse=np.zeros((CSE_DIM, hh, ww), np.float32), cse_mask=np.zeros((hh, ww), bool),
                                         stride=self.stride, extras={"detected": False}))
                continue
            k = int(inst.scores.argmax())
            dp = inst.pred_densepose
            emb = dp.embedding[k].numpy()
            seg = dp.coarse_segm[k].numpy()
            box = inst.pred_boxes.tensor[k].numpy()
            cse, mask = paste_box_embedding(emb, seg, box, h, w, self.stride)
            out.append(TeacherOutput(cse=cse, cse_mask=mask, stride=self.stride, extras={"detected": True}))
        return out
