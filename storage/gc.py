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

Only files named as shards are ever touched (``shards/<dataset id>/<teacher>/<32 hex>-<16 hex>.parquet`` and
``.<that name>.<uid>.tmp``): anything else a user put under ``shards/`` stays. Without a readable catalog no
file can be proven an orphan, so removing orphans or superseded files is then refused
(:class:`~storage.errors.CatalogMissingError`: run ``ghnerf distill`` first, it restores the catalog from the
intact shards).

Files younger than ``min_age_s`` are never removed unless a catalog entry references them (a concurrent
distill may be between writing a shard and its entry), and neither are files of a shard key whose catalog
entry is damaged (rerun ``ghnerf distill`` to repair it first).
"""

import time
from dataclasses import dataclass, field

from storage.catalog import CATALOG_DIR, SHARDS_DIR, Catalog, DamagedEntry
from storage.errors import CatalogMissingError
from storage.root import StorageRoot
from storage.shards import is_shard_file, is_shard_temp_file

GC_MIN_AGE_S = 15 * 60
GC_CONFIRM_ABOVE = 5  # ``ghnerf store gc`` removes more files than this only with --yes (else it lists them)


@dataclass
class GcReport:
    """What :func:`collect_garbage` removed (or would remove, for a dry run) and what it left, and why."""

    removed: list[dict] = field(default_factory=list)  # {"path", "why"}
    kept_young: list[str] = field(default_factory=list)
    kept_damaged: list[str] = field(default_factory=list)
    kept_foreign: list[str] = field(default_factory=list)  # files not named like shards: never touched
    damaged: list[DamagedEntry] = field(default_factory=list)
    dry_run: bool = False
    held_back: bool = False  # more than ``confirm_above`` files: listed, not removed


def collect_garbage(root: StorageRoot, under: str = SHARDS_DIR, orphans: bool = True, superseded: bool = False,
                    min_age_s: float = GC_MIN_AGE_S, dry_run: bool = False, now: float | None = None,
                    confirm_above: int | None = None) -> GcReport:
    """Remove the garbage shard files under ``under`` (a folder of the storage root).

    Only files named as shards are (``shards/<dataset id>/<teacher>/<key>-<uid>.parquet``, and the temporary
    files of their interrupted writes); anything else under ``shards/`` is listed in ``kept_foreign``.

    Args:
        root: the storage root.
        under: folder to clean (``shards`` or one ``shards/<dataset id>/<teacher>``).
        orphans: also remove files no catalog entry references (duplicates and temporary files always go).
        superseded: also remove files of superseded versions.
        min_age_s: files no catalog entry references are kept while younger than this.
        dry_run: report only.
        confirm_above: when more files than this would go, report them (``held_back``) and remove nothing.
    Raises:
        CatalogMissingError: orphans or superseded files are asked for but the catalog has no readable entry
            while shard files exist (nothing can be proven an orphan: ``ghnerf distill`` restores the catalog).
    """
    now = time.time() if now is None else now
    catalog = Catalog(root)
    entries, damaged = catalog.scan()
    files = root.walk(under)
    if (orphans or superseded) and not entries and any(is_shard_file(rel) for rel, _ in files):
        raise CatalogMissingError(
            f"{root.describe(CATALOG_DIR)}: no readable catalog entry"
            + (f" ({len(damaged)} damaged)" if damaged else "")
            + ", so no shard file can be proven an orphan; run `ghnerf distill` with the arguments that wrote "
              "this store first (it registers the intact shards again); nothing was removed")
    current, _ = catalog.in_force(entries)
    serving = {e.shard_path for e in current}
    current_keys = {e.shard_key for e in current}
    referenced = {e.shard_path for e in entries}
    protected = {d.shard_key for d in damaged}
    report = GcReport(damaged=damaged, dry_run=dry_run)
    for rel, mtime in files:
        why = _garbage_reason(rel, serving, current_keys, referenced, protected, orphans, superseded, report)
        if why is None:
            continue
        if rel not in referenced and (mtime is None or now - mtime < min_age_s):
            report.kept_young.append(rel)
            continue
        report.removed.append({"path": rel, "why": why})
    if confirm_above is not None and len(report.removed) > confirm_above:
        report.held_back = True
    if dry_run or report.held_back:
        return report
    gone = []
    for g in report.removed:
        try:
            root.delete(g["path"])
        except FileNotFoundError:
            continue  # another gc was faster
        gone.append(g)
    report.removed = gone
    return report


def _garbage_reason(rel: str, serving: set, current_keys: set, referenced: set, protected: set, orphans: bool,
                    superseded: bool, report: GcReport) -> str | None:
    """Why ``rel`` is garbage, or None to keep it (files kept for a reason are noted in ``report``)."""
    if rel in serving:
        return None
    if is_shard_temp_file(rel):
        return "temporary file of an interrupted write"
    if not is_shard_file(rel):
        report.kept_foreign.append(rel)
        return None
    key = rel.rsplit("/", 1)[-1].removesuffix(".parquet").rsplit("-", 1)[0]
    if key in protected:
        report.kept_damaged.append(rel)
        return None
    if key in current_keys:
        return "duplicate of the served shard of its key (runs raced, or it was recomputed)"
    if rel not in referenced:
        return "no catalog entry references it" if orphans else None
    return "superseded by a newer version of its slot" if superseded else None
