"""Inference with a trained student: a whole view rendered, a validation picture.

Evaluation, rendering and export import this module (and :mod:`ghnerf.student.checkpoints`), never the training loop.
"""

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import torch

from ghnerf.base.fileio import write_image
from ghnerf.base.viz import heatmap_overlay
from ghnerf.student.data import Example
from ghnerf.student.heads import Head
from ghnerf.student.model import GHNeRF
from ghnerf.student.model_io import MultiViewBatch, SourceEncoding
from ghnerf.student.views import level_maps


# On CPU the per-ray work is fastest in chunks whose per-sample tensors stay in cache: about 32k (point, source
# view) pairs (512², 2 views: 4,096 rays of 4 samples or 8,192 of 2; a whole frame at once is 1.15-1.3x slower).
CPU_POINT_VIEWS = 32768
# On a GPU a chunk is as large as free memory allows: bytes per (point, view) pair the fine level's per-ray work
# holds at once (image features, directions, the view pooling's and colour blending's hidden layers, in float32,
# with room for the allocator), and the share of the free memory a chunk may take.
GPU_BYTES_PER_POINT_VIEW = 2048
GPU_MEMORY_SHARE = 0.5
MIN_CHUNK = 1024


def ray_chunk(samples_per_ray: int, source_views: int, device: torch.device, free_bytes: int | None = None) -> int:
    """Rays per chunk of the per-ray work: cache-sized on CPU, memory-sized on a GPU (``free_bytes``: the device's
    free memory, read from it when not given)."""
    point_views = samples_per_ray * source_views
    if torch.device(device).type == "cpu":
        return max(MIN_CHUNK, CPU_POINT_VIEWS // point_views)
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return max(MIN_CHUNK, int(free_bytes * GPU_MEMORY_SHARE) // (GPU_BYTES_PER_POINT_VIEW * point_views))


# Source encodings FrameEncodings keeps: about 57 MiB each for 2 views at 512² (the default preset), on the device.
KEEP_SOURCE_SETS = 4


class FrameEncodings:
    """The source encodings of one frame's latest source sets, for the views rendered from it.

    :meth:`GHNeRF.encode` reads the source views only, so views of a frame that share their source cameras (in the
    same order) encode them once. Keeps the ``keep`` most recently used source sets of one frame: asking for another
    frame drops the last one's."""

    def __init__(self, model: GHNeRF, device: torch.device, keep: int = KEEP_SOURCE_SETS):
        self.model, self.device, self.keep = model, device, keep
        self._frame: Hashable | None = None
        self._by_sources: OrderedDict[tuple[int, ...], SourceEncoding] = OrderedDict()
        self.encoded = 0  # encode calls so far

    @torch.no_grad()
    def get(self, frame: Hashable, sources: Sequence[int], batch: MultiViewBatch) -> SourceEncoding:
        """The encoding of ``batch``'s source views: ``frame``'s cameras ``sources`` (the key; eval mode)."""
        if frame != self._frame:
            self._frame = frame
            self._by_sources.clear()
        key = tuple(int(s) for s in sources)
        if key in self._by_sources:
            self._by_sources.move_to_end(key)
        else:
            self.model.eval()
            self._by_sources[key] = self.model.encode(batch.to(self.device))
            self.encoded += 1
            if len(self._by_sources) > self.keep:
                self._by_sources.popitem(last=False)
        return self._by_sources[key]


@torch.no_grad()
def render_full_view(model: GHNeRF, ex: Example, device: torch.device, chunk: int | None = None,
                     encoding: SourceEncoding | None = None) -> dict:
    """Render every pixel of the fine level inside the body box (rest black), eval mode.

    One model call: each level's cost volume is built once for the view; only the per-ray work is chunked
    (``chunk`` rays at a time, default :func:`ray_chunk`; the output does not depend on it).
    Returns "rgb" (H, W, 3), per rendered head (:class:`~ghnerf.student.heads.Head`) its (C, H, W) map or None,
    "depth" (H, W) and "box".
    ``encoding``: the source views' :meth:`GHNeRF.encode`, when the caller has it (:class:`FrameEncodings`: views
    sharing their sources encode them once); else they are encoded here."""
    model.eval()
    H, W = ex.image.shape[:2]
    lv = model.cfg.levels[-1]
    size = (max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1))
    box = level_maps(ex, size)["box"]
    uv = torch.nonzero(box).flip(-1).float().to(device)
    rays = [uv.new_zeros((0, 2))] * (len(model.cfg.levels) - 1) + [uv]  # coarse levels guide only
    batch = ex.batch.to(device)
    encoding = encoding or model.encode(batch)
    chunk = chunk or ray_chunk(lv.samples_per_ray, len(batch.src_images), device)
    out = model(batch, rays, encoding=encoding, chunk=chunk)[-1]
    x, y = uv[:, 0].long().cpu(), uv[:, 1].long().cpu()

    def scatter(values: torch.Tensor | None, channels: int | None) -> torch.Tensor | None:
        if values is None:
            return None
        image = torch.zeros(*size, channels) if channels else torch.zeros(size)
        image[y, x] = values.float().cpu()
        return image

    heads = {head: scatter(values, values.shape[-1]).permute(2, 0, 1) for head, values in out.heads.items()}
    return {"rgb": scatter(out.rgb, 3), **{head.value: heads.get(head) for head in Head},
            "depth": scatter(out.depth, None), "box": box}


def validation_image(model: GHNeRF, ex: Example, path: Path, device: torch.device) -> None:
    """Rendered | ground truth | predicted heatmaps over the render, side by side."""
    r = render_full_view(model, ex, device)
    pred = (r["rgb"].clamp(0, 1).numpy() * 255).astype(np.uint8)
    gt = (level_maps(ex, pred.shape[:2])["rgb"].numpy() * 255).astype(np.uint8)
    tiles = [pred, gt]
    if r["heatmaps"] is not None:
        tiles.append(heatmap_overlay(pred, r["heatmaps"].numpy()))
    write_image(path, np.concatenate(tiles, axis=1))
