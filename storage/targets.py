"""Serving stored targets to training code: a torch ``Dataset`` over the verified shards of one teacher.

Shards come from the catalog (never a directory crawl), newest per slot. Every
shard is verified against its catalog sha256 when the store is opened and again
whenever it is loaded, so a truncated or edited shard is refused with
:class:`~storage.errors.ShardIntegrityError` naming the file. A catalog entry
whose shard file is missing, or a damaged catalog entry that may belong to the
teacher, is refused too (:class:`~storage.errors.PartialTargetsError`, naming
every such file and how to restore it), unless the caller explicitly allows
partial targets; the left-out shards are then listed in ``left_out``.
"""

from collections import OrderedDict

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset

from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.base.errors import ConfigError
from storage.catalog import Catalog, CatalogEntry
from storage.errors import PartialTargetsError
from storage.root import StorageRoot
from storage.shards import DecodedTarget, decode_rows, read_shard

KEY_COLUMNS = ["subject", "frame_id", "camera", "kind"]


class TargetStore:
    """All current targets of one teacher (and dataset) in a storage root.

    Args:
        store_url: storage root (local path or fsspec URL).
        teacher: teacher name.
        dataset_id: restrict to one dataset (default: the only one the teacher has, else an error).
        cache_shards: decoded shards kept in memory.
        allow_partial: serve the shards that are there when some listed ones are missing or their catalog
            entries damaged (``left_out`` says which); by default that is an error.
    Raises:
        StoreNotFoundError, StorageAccessError: the storage root does not exist or cannot be reached.
        PartialTargetsError: shard files missing / catalog entries damaged, without ``allow_partial``.
        ConfigError: the teacher has no shards here.
    """

    def __init__(self, store_url, teacher: str, dataset_id: str | None = None, storage_options: dict | None = None,
                 cache_shards: int = 4, allow_partial: bool = False):
        self.root = StorageRoot(store_url, storage_options)
        self.root.check(write=False)
        state = Catalog(self.root).state(dataset_id, teacher)
        entries = state.current
        self.left_out = ([f"{self.root.describe(e.shard_path)}: shard file is missing (catalog entry of {e.subject} "
                          f"frames {e.frame_ids[0]}-{e.frame_ids[-1]})" for e in state.missing]
                         + [d.message() for d in state.damaged])
        if self.left_out and not allow_partial:
            raise PartialTargetsError(
                f"{self.left_out[0]}; {len(self.left_out)} of the {len(entries) + len(self.left_out)} shard(s) of "
                f"teacher {teacher!r} in {store_url} cannot be served: rerun `ghnerf distill` with the same "
                "arguments to rewrite them, or pass --allow-partial-targets to use the others"
                + "".join(f"\n  {line}" for line in self.left_out[1:]))
        if not entries:
            raise ConfigError(f"no shards of teacher {teacher!r} in {store_url}; run `ghnerf distill --teacher "
                              f"{teacher}` first")
        datasets = sorted({e.dataset_id for e in entries})
        if len(datasets) > 1:
            raise ConfigError(f"teacher {teacher!r} has shards of several datasets {datasets}; pass dataset_id")
        self.dataset_id = datasets[0]
        self.entries: list[CatalogEntry] = sorted(entries, key=lambda e: (e.subject, e.frame_ids))
        self.index: dict[tuple, tuple[int, int]] = {}
        for i, e in enumerate(self.entries):
            table = read_shard(self.root, e.shard_path, e.shard_sha256).select(KEY_COLUMNS)
            for j, row in enumerate(table.to_pylist()):
                self.index[(row["subject"], row["frame_id"], row["camera"], row["kind"])] = (i, j)
        self._cache: OrderedDict[int, list[DecodedTarget]] = OrderedDict()
        self._cache_size = cache_shards

    def kinds(self) -> set[str]:
        return {k[3] for k in self.index}

    def keys(self, kind: str) -> list[tuple[str, int, str]]:
        return sorted((s, f, c) for (s, f, c, k) in self.index if k == kind)

    def _shard(self, i: int) -> list[DecodedTarget]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        e = self.entries[i]
        rows = decode_rows(read_shard(self.root, e.shard_path, e.shard_sha256))
        self._cache[i] = rows
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return rows

    def get(self, subject: str, frame_id: int, camera: str, kind: str) -> DecodedTarget:
        """The target of one view; KeyError when the teacher produced none (e.g. the view failed)."""
        i, j = self.index[(subject, frame_id, camera, kind)]
        return self._shard(i)[j]

    def keypoints(self, subject: str, frame_id: int, camera: str) -> np.ndarray:
        """(25, 3) a pose teacher's keypoints of one view decoded from its stored heatmaps: x, y in the
        full-resolution undistorted pixels the teacher saw, and the peak value; NaN and 0 where the teacher
        marked the joint missing. KeyError when the teacher produced nothing for the view."""
        t = self.get(subject, frame_id, camera, "heatmap")
        kp = HeatmapCodec(stride=t.stride).decode(t.array)
        if t.joint_missing is not None:
            kp[t.joint_missing] = (np.nan, np.nan, 0.0)
        return kp

    def find_target(self, target_id: str) -> tuple[CatalogEntry, DecodedTarget] | None:
        for i, e in enumerate(self.entries):
            table = read_shard(self.root, e.shard_path, e.shard_sha256)
            hit = pc.index(table.column("target_id"), target_id).as_py()
            if hit >= 0:
                return e, self._shard(i)[hit]
        return None


class TargetDataset(Dataset):
    """Torch dataset of one target kind, aligned with dataset frames by (subject, frame_id, camera).

    Items are dicts: ``subject``, ``frame_id``, ``camera``, ``target`` (float32 tensor), ``stride``, plus
    ``mask`` (bool, cse targets) and ``joint_missing`` (bool (25,), pose targets) when the kind has them,
    so that items of one kind collate with torch's default collate.
    """

    def __init__(self, store: TargetStore, kind: str):
        if kind not in store.kinds():
            raise ConfigError(f"teacher shards hold {sorted(store.kinds())}, not {kind!r}")
        self.store, self.kind = store, kind
        self.keys = store.keys(kind)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        subject, frame_id, camera = self.keys[i]
        t = self.store.get(subject, frame_id, camera, self.kind)
        item = {"subject": subject, "frame_id": frame_id, "camera": camera, "target": torch.from_numpy(t.array),
                "stride": t.stride}
        if t.mask is not None:
            item["mask"] = torch.from_numpy(t.mask)
        if t.joint_missing is not None:
            item["joint_missing"] = torch.from_numpy(t.joint_missing)
        return item
