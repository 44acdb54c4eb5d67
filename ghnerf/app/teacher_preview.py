"""Preview pictures of what a teacher said: heatmaps and skeleton (or CSE colours) over the frame's views."""

import numpy as np
import pyarrow.compute as pc

from ghnerf.base.kinds import TargetKind
from ghnerf.base.viz import contact_sheet, draw_skeleton, embedding_colours, heatmap_overlay
from ghnerf.data import load_view, open_dataset
from storage.catalog import CatalogEntry
from storage.root import StorageRoot
from storage.shards import decode_rows, read_shard


def shard_preview(store: StorageRoot, entry: CatalogEntry, max_views: int = 8) -> np.ndarray:
    """Contact sheet of the first frame of a shard: each view with the teacher's targets drawn over it."""
    table = read_shard(store, entry.shard_path, entry.shard_sha256)
    frame_id = pc.min(table.column("frame_id")).as_py()
    by_view: dict[str, dict] = {}
    for r in decode_rows(table.filter(pc.equal(table.column("frame_id"), frame_id))):
        by_view.setdefault(r.camera, {})[r.kind] = r
    seq = open_dataset(entry.dataset_root, entry.layout).sequence(entry.subject)
    frame = next(seq.frame(i) for i in range(seq.num_frames) if seq.frame(i).frame_id == frame_id)
    tiles, labels = [], []
    for v in frame.views:
        if v.name not in by_view or len(tiles) >= max_views:
            continue
        img = load_view(v).photo
        t = by_view[v.name]
        if TargetKind.HEATMAP in t:
            img = heatmap_overlay(img, t[TargetKind.HEATMAP].array)
        if TargetKind.CSE in t:
            img = embedding_colours(img, t[TargetKind.CSE].array, t[TargetKind.CSE].mask)
        if TargetKind.KEYPOINTS in t:
            kp = np.nan_to_num(t[TargetKind.KEYPOINTS].array)
            img = draw_skeleton(img, kp)
        tiles.append(img)
        labels.append(f"{v.name} f{frame_id}")
    return contact_sheet(tiles, columns=4, labels=labels)
