"""An example's images at a level's render resolution, and the targets read at chosen pixels."""

import torch
import torch.nn.functional as F

from ghnerf.student.data import Example


def level_maps(ex: Example, size: tuple[int, int], heatmap_in_mask: bool = False) -> dict:
    """Target maps of one example resized to a level's render resolution.

    ``heatmap_in_mask``: heatmap targets are zeroed outside the foreground mask (at full resolution, before resizing).
    """
    h, w = size
    img = ex.image.permute(2, 0, 1)[None]
    out = {"rgb": F.interpolate(img, size=size, mode="area")[0].permute(1, 2, 0) if (h, w) != img.shape[-2:]
           else ex.image,
           "mask": F.interpolate(ex.mask[None, None].float(), size=size, mode="nearest")[0, 0].bool(),
           "box": F.interpolate(ex.box[None, None].float(), size=size, mode="nearest")[0, 0].bool()}
    if ex.heatmaps is not None:
        hm = ex.heatmaps * ex.mask if heatmap_in_mask else ex.heatmaps
        out["heatmaps"] = (F.interpolate(hm[None], size=size, mode="bilinear", align_corners=False)[0]
                           if (h, w) != hm.shape[-2:] else hm)  # at its own size the resampling is the identity
    if ex.cse is not None:
        out["cse"] = F.interpolate(ex.cse[None], size=size, mode="nearest")[0]
        out["cse_mask"] = F.interpolate(ex.cse_mask[None, None].float(), size=size, mode="nearest")[0, 0].bool()
    return out


def gather_targets(maps: dict, uv: torch.Tensor, ex: Example) -> dict:
    x, y = uv[:, 0].long(), uv[:, 1].long()
    t = {"rgb": maps["rgb"][y, x], "joint_valid": ex.joint_valid}
    if "heatmaps" in maps:
        t["heatmaps"] = maps["heatmaps"][:, y, x].T
    if "cse" in maps:
        t["cse"] = maps["cse"][:, y, x].T
        t["cse_mask"] = maps["cse_mask"][y, x]
    return t
