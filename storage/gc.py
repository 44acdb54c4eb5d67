"""Removing shard files nothing serves: race duplicates, orphans, interrupted writes (``ghnerf store gc``).

What counts as garbage, per file under ``shards/``:

* a **duplicate**: its shard key is the key in force for its slot, but another file of that key serves
  (two distill runs raced, or a shard was recomputed because its catalog entry was lost). Its targets are
  identical to the served ones, so nothing is lost. ``ghnerf distill`` removes these in its own
  ``shards/<dataset id>/<teacher>/`` folder after every run.
* an **orphan**: no catalog entry references it (the catalog was deleted, or a run died between writing a
  shard and its entry). ``ghnerf distill`` re-registers an intact orphan of a shard it is asked to produce
  (its name carries its sha256); ``ghnerf store gc`` removes the rest.
* a **superseded** version (``--superseded``): its slot's newer entry, for changed inputs or another teacher
  version, is in force. A checkpoint trained on it keeps its lineage (catalog entries are never removed),
  but the targets themselves are gone.
* a temporary file of an interrupted local write (``.<name>.<uid>.tmp``).

Files younger than ``min_age_s`` are never removed unless a catalog entry references them (a concurrent
distill may be between writing a shard and its entry), and neither are files of a shard key whose catalog
entry is damaged (rerun ``ghnerf distill`` to repair it first).
"""

import posixpath
import time
from dataclasses import dataclass, field

from storage.catalog import SHARDS_DIR, Catalog, DamagedEntry
from storage.root import StorageRoot

GC_MIN_AGE_S = 15 * 60


@dataclass
class GcReport:
    """What :func:`collect_garbage` removed (or would remove, for a dry run) and what it left, and why."""

    removed: list[dict] = field(default_factory=list)  # {"path", "why"}
    kept_young: list[str] = field(default_factory=list)
    kept_damaged: list[str] = field(default_factory=list)
    damaged: list[DamagedEntry] = field(default_factory=list)
    dry_run: bool = False


def collect_garbage(root: StorageRoot, under: str = SHARDS_DIR, orphans: bool = True, superseded: bool = False,
                    min_age_s: float = GC_MIN_AGE_S, dry_run: bool = False, now: float | None = None) -> GcReport:
    """Remove the garbage shard files under ``under`` (a folder of the storage root).

    Args:
        root: the storage root.
        under: folder to clean (``shards`` or one ``shards/<dataset id>/<teacher>``).
        orphans: also remove files no catalog entry references (duplicates and temporary files always go).
        superseded: also remove files of superseded versions.
        min_age_s: files no catalog entry references are kept while younger than this.
        dry_run: report only.
    """
    now = time.time() if now is None else now
    catalog = Catalog(root)
    entries, damaged = catalog.scan()
    current, _ = catalog.in_force(entries)
    serving = {e.shard_path for e in current}
    current_keys = {e.shard_key for e in current}
    referenced = {e.shard_path for e in entries}
    protected = {d.shard_key for d in damaged}
    report = GcReport(damaged=damaged, dry_run=dry_run)
    for rel, mtime in root.walk(under):
        if rel in serving:
            continue
        name = posixpath.basename(rel)
        key = name.removesuffix(".parquet").rsplit("-", 1)[0]
        if name.startswith("."):
            if not name.endswith(".tmp"):
                continue
            why = "temporary file of an interrupted write"
        elif not name.endswith(".parquet"):
            continue
        elif key in protected:
            report.kept_damaged.append(rel)
            continue
        elif key in current_keys:
            why = "duplicate of the served shard of its key (runs raced, or it was recomputed)"
        elif rel not in referenced:
            if not orphans:
                continue
            why = "no catalog entry references it"
        elif superseded:
            why = "superseded by a newer version of its slot"
        else:
            continue
        if rel not in referenced and (mtime is None or now - mtime < min_age_s):
            report.kept_young.append(rel)
            continue
        if not dry_run:
            try:
                root.delete(rel)
            except FileNotFoundError:
                continue  # another gc was faster
        report.removed.append({"path": rel, "why": why})
    return report
