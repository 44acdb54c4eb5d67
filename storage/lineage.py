"""Lineage queries: from a target, shard or shard key back to input images and teacher weights.

Checkpoints and evaluation reports (student issues) record the shard keys and
hashes they used; :func:`shard_lineage` is the link they resolve through.
"""

from pathlib import PurePosixPath

from ghnerf.base.errors import ConfigError
from storage.catalog import Catalog, CatalogEntry, damaged_error
from storage.root import StorageRoot
from storage.shards import read_shard


def shard_lineage(entry: CatalogEntry) -> dict:
    """Everything a shard's targets were made from, as a plain dict."""
    return {
        "shard": {"key": entry.shard_key, "path": entry.shard_path, "sha256": entry.shard_sha256,
                  "rows": entry.rows, "bytes": entry.shard_bytes, "created_at": entry.created_at.isoformat(),
                  "flow_run_id": entry.flow_run_id, "host": entry.host, "code_version": entry.code_version,
                  "failures": entry.failures},
        "teacher": {"name": entry.teacher, "version": entry.teacher_version, "weights_sha256": entry.weights_sha256,
                    "config_hash": entry.config_hash, "config": entry.config_json},
        "dataset": {"id": entry.dataset_id, "root": entry.dataset_root, "layout": entry.layout,
                    "subject": entry.subject, "frame_ids": entry.frame_ids},
        "inputs": entry.inputs,
        "consistency": entry.consistency,
    }


def resolve(store_url: str, ref: str, storage_options: dict | None = None) -> dict:
    """Lineage of ``ref``: a shard file path, a shard key, or a target id.

    Returns:
        ``{"ref": ..., "kind": "shard" | "target", "target": {...} (targets only), **shard_lineage,
        "damaged_catalog_entries": [messages]}`` (the catalog files that could not be read, if any).
    Raises:
        StoreNotFoundError: the storage root does not exist (nothing is created).
        CatalogDamagedError: ``ref`` is not found and some catalog entries are damaged (it may be in one).
        ConfigError: nothing in the catalog matches ``ref``.
    """
    root = StorageRoot(store_url, storage_options)
    root.check(write=False)
    entries, damaged = Catalog(root).scan()
    notes = {"damaged_catalog_entries": [d.message() for d in damaged]}
    name = PurePosixPath(ref).name
    for e in reversed(entries):
        if e.shard_key == ref or PurePosixPath(e.shard_path).name == name or e.shard_path == ref:
            return {"ref": ref, "kind": "shard", **shard_lineage(e), **notes}
    for e in reversed(entries):
        if not root.exists(e.shard_path):
            continue
        table = read_shard(root, e.shard_path, e.shard_sha256).select(
            ["target_id", "subject", "frame_id", "camera", "kind", "image_sha256", "mask_sha256"])
        for row in table.to_pylist():
            if row["target_id"] == ref:
                return {"ref": ref, "kind": "target", "target": row, **shard_lineage(e), **notes}
    if damaged:
        raise damaged_error(damaged)
    raise ConfigError(f"{ref!r} is not a shard path, shard key or target id in the catalog of {store_url}")
