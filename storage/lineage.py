"""Lineage queries: from a target, shard or shard key back to input images and teacher weights.

Checkpoints and evaluation reports (student issues) record the shard keys and
hashes they used; :func:`shard_lineage` is the link they resolve through.
"""

from pathlib import Path, PurePosixPath

from ghnerf.base.errors import ConfigError
from storage.catalog import Catalog, CatalogEntry, damaged_error, slot
from storage.inputs import InputChecker
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


def _pick(matches: list[CatalogEntry], current: list[CatalogEntry], root: StorageRoot) -> CatalogEntry:
    """Of the entries ``ref`` matches (oldest first), the one in force, else the newest whose file is there,
    else the newest (a key distilled twice has two entries: the one that serves is the answer)."""
    serving = [e for e in matches if e in current]
    present = serving or [e for e in matches if root.exists(e.shard_path)]
    return (present or matches)[-1]


def entry_status(entry: CatalogEntry, current: list[CatalogEntry], root: StorageRoot) -> dict:
    """``{"status": "current" | "superseded" | "file missing", "current_shard": path serving its slot or None,
    "stale_inputs": [messages]}``: whether the entry is what its slot serves, and which of its input files
    changed since (:mod:`storage.inputs`; read in the dataset it was made from)."""
    in_slot = next((c for c in current if slot(c) == slot(entry)), None)
    if entry in current:
        status = "current"
    elif not root.exists(entry.shard_path):
        status = "file missing"
    else:
        status = "superseded"
    return {"status": status, "current_shard": None if in_slot is None else in_slot.shard_path,
            "stale_inputs": [s.message() for s in InputChecker().stale(entry, root.describe)]}


def resolve(store_url: str, ref: str, storage_options: dict | None = None) -> dict:
    """Lineage of ``ref``: a shard file path, a shard key, or a target id.

    Returns:
        ``{"ref": ..., "kind": "shard" | "target", "target": {...} (targets only), **shard_lineage,
        **entry_status, "damaged_catalog_entries": [messages]}`` (the catalog files that could not be read,
        if any). A shard key with several entries (distilled again after its file was lost) resolves to the
        entry in force.
    Raises:
        StoreNotFoundError: the storage root does not exist (nothing is created).
        CatalogDamagedError: ``ref`` is not found and some catalog entries are damaged (it may be in one).
        ConfigError: nothing in the catalog matches ``ref``.
    """
    root = StorageRoot(store_url, storage_options)
    root.check(write=False)
    catalog = Catalog(root)
    entries, damaged = catalog.scan()
    current, _ = catalog.in_force(entries)
    notes = {"damaged_catalog_entries": [d.message() for d in damaged]}
    name = PurePosixPath(ref).name
    by_key = [e for e in entries if e.shard_key == ref]
    by_path = [e for e in entries if PurePosixPath(e.shard_path).name == name or e.shard_path == ref]
    for matches in (by_key, by_path):
        if matches:
            e = _pick(matches, current, root)
            return {"ref": ref, "kind": "shard", **shard_lineage(e), **entry_status(e, current, root), **notes}
    for e in reversed(entries):
        if not root.exists(e.shard_path):
            continue
        table = read_shard(root, e.shard_path, e.shard_sha256).select(
            ["target_id", "subject", "frame_id", "camera", "kind", "image_sha256", "mask_sha256"])
        for row in table.to_pylist():
            if row["target_id"] == ref:
                return {"ref": ref, "kind": "target", "target": row, **shard_lineage(e),
                        **entry_status(e, current, root), **notes}
    if damaged:
        raise damaged_error(damaged)
    raise ConfigError(f"{ref!r} is not a shard path, shard key or target id in the catalog of {store_url}")


def ref_problem(ref: str, store: str | None) -> str | None:
    """Why ``ghnerf lineage REF`` cannot answer for ``ref`` (not a ``.pt`` checkpoint or ``.json`` report, which
    are read without a store), or None."""
    path = Path(ref)
    if path.is_dir():
        return (f"{ref}: is a folder; give a checkpoint (e.g. {path / 'checkpoints' / 'latest.pt'}), an evaluation "
                "report (metrics.json) or a shard file")
    if path.is_file() and path.suffix != ".parquet":
        return (f"{ref}: not a checkpoint (.pt), an evaluation report (.json) or a shard (.parquet); lineage answers "
                "for those, and for shard keys and target ids with --store ROOT")
    if store is None:
        return "--store ROOT is needed for shards, shard keys and target ids (the storage root `ghnerf distill` wrote)"
    return None


def lineage_warnings(info: dict) -> list[str]:
    """Warnings of a resolved shard (:func:`resolve`): superseded or lost, and input files changed since."""
    where = info["shard"]["path"]
    status, serving = info.get("status"), info.get("current_shard")
    notes = []
    if status not in (None, "current"):
        notes.append(f"{where}: {status}; " + (f"its slot is served by {serving}" if serving
                                                 else "nothing serves its slot: rerun `ghnerf distill`"))
    return notes + [f"{line}: these targets are stale" for line in info.get("stale_inputs", [])]
