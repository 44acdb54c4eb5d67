"""Are a shard's inputs still the files it was made from?

``ghnerf distill`` records, per input file of a shard, its sha256 and beside it the file's size and
modification time (ns). Before targets are used (training, evaluation, export) every input of every shard
is checked against the file that will be read: the same size and mtime count as unchanged (no read), else
the file is hashed and compared. Catalog entries written before size and mtime were recorded are hashed.
A changed or missing input makes its shard *stale*: :class:`~storage.errors.StaleTargetsError` names the file.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ghnerf.base.fileio import file_sha256
from storage.catalog import CatalogEntry
from storage.errors import StaleTargetsError

MISSING = "missing"  # the sha256 distill records for an input file that was not there


def input_record(root: Path, rel: str) -> dict:
    """``{"path", "sha256", "size", "mtime_ns"}`` of ``root / rel`` as distill records it (sha256 ``missing``,
    size and mtime None when the file is not there)."""
    path = root / rel
    if not path.is_file():
        return {"path": rel, "sha256": MISSING, "size": None, "mtime_ns": None}
    st = os.stat(path)
    return {"path": rel, "sha256": file_sha256(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass(frozen=True)
class StaleInput:
    """An input file whose content is no longer what a shard was made from."""

    path: Path
    recorded: str
    found: str
    shard: str

    def message(self) -> str:
        now = "is missing" if self.found == MISSING else f"has sha256 {self.found[:12]}..."
        return (f"{self.path}: changed since its targets were distilled (it {now}; shard {self.shard} was made "
                f"from sha256 {self.recorded[:12]}...)")


class InputChecker:
    """Compares recorded inputs with files under a dataset root, hashing each file at most once."""

    def __init__(self, data_root: str | Path | None = None):
        self.data_root = None if data_root is None else Path(data_root)
        self._hashes: dict[Path, str] = {}

    def current_sha(self, path: Path, record: dict) -> str:
        """``record["sha256"]`` when size and mtime still match it, else the file's sha256 (or ``missing``)."""
        if not path.is_file():
            return MISSING
        st = os.stat(path)
        if record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
            return record["sha256"]
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]

    def stale(self, entry: CatalogEntry, describe=str) -> list[StaleInput]:
        """The inputs of ``entry`` that changed (read under ``data_root``, else the entry's own dataset root)."""
        root = self.data_root or Path(entry.dataset_root)
        out = []
        for record in entry.inputs:
            path = root / record["path"]
            found = self.current_sha(path, record)
            if found != record["sha256"]:
                out.append(StaleInput(path, record["sha256"], found, describe(entry.shard_path)))
        return out


def check_inputs(entries: Iterable[CatalogEntry], data_root: str | Path | None = None, describe=str) -> None:
    """Refuse targets whose inputs changed since distill.

    Raises:
        StaleTargetsError: every stale input listed (the first on the error line), with the repair.
    """
    checker = InputChecker(data_root)
    entries = list(entries)
    stale_shards, found = 0, []
    for e in entries:
        bad = checker.stale(e, describe)
        stale_shards += bool(bad)
        found += bad
    if not found:
        return
    more = "".join(f"\n  {s.message()}" for s in found[1:])
    raise StaleTargetsError(f"{found[0].message()}; {stale_shards} of {len(entries)} shard(s) are stale "
                            f"({len(found)} input file(s) changed): rerun `ghnerf distill` with the same arguments "
                            "to recompute them (`ghnerf train --recompute-stale-targets` does it for training)" + more)
