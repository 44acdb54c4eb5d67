"""The lineage catalog: one small Parquet file per written shard, under ``catalog/``.

One file per entry (never an in-place update) means concurrent distill runs
cannot corrupt the catalog, and it works the same on a local disk and on object
storage. Per *slot* (dataset, teacher, subject, frames) the newest entry says
which shard key is in force; among the entries of that key (two runs raced, or a
rerun after a crash) the newest whose file is present serves. A slot whose
in-force key has no file left is *missing* (:meth:`Catalog.state`), never
silently replaced by an older version.

An entry file that cannot be read (truncated, not Parquet, wrong columns) is
*damaged*: it is named (:class:`DamagedEntry`), and ``ghnerf distill`` with the
same arguments repairs it. Its file name ``<shard key>-<uid>.parquet`` still says
which shard it described.
"""

import getpass
import json
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.errors import CatalogDamagedError
from storage.root import StorageRoot
from storage.schemas import CATALOG_SCHEMA, CATALOG_SCHEMA_V1

CATALOG_DIR = "catalog"
SHARDS_DIR = "shards"


@dataclass(frozen=True)
class CatalogEntry:
    """Lineage of one shard (see :data:`storage.schemas.CATALOG_SCHEMA` for units)."""

    shard_key: str
    shard_path: str
    shard_sha256: str
    shard_bytes: int
    rows: int
    dataset_id: str
    dataset_root: str
    layout: str
    subject: str
    frame_ids: list[int]
    kinds: list[str]
    inputs: list[dict]  # {"path" (relative to dataset_root), "sha256", "size", "mtime_ns"} (no size/mtime: older)
    teacher: str
    teacher_version: str
    weights_sha256: str
    config_hash: str
    config_json: str
    code_version: str
    flow_run_id: str | None
    host: str
    created_at: datetime
    failures: list[dict] = field(default_factory=list)
    consistency_json: str | None = None

    @property
    def consistency(self) -> dict | None:
        return None if self.consistency_json is None else json.loads(self.consistency_json)


@dataclass(frozen=True)
class DamagedEntry:
    """A catalog file that cannot be read.

    Attributes:
        rel: its path relative to the storage root.
        where: its full path or URL (for messages).
        shard_key: the shard key from its file name.
        reason: what is wrong with it.
        shard_paths: shard files of that key found in the store (they tell the dataset and teacher).
    """

    rel: str
    where: str
    shard_key: str
    reason: str
    shard_paths: tuple[str, ...] = ()

    @property
    def teachers(self) -> set[str]:
        """Teachers of the shard files of its key (``shards/<dataset id>/<teacher>/<key>-<uid>.parquet``)."""
        return {p.split("/")[2] for p in self.shard_paths if p.count("/") >= 3}

    def message(self) -> str:
        about = (f"its shard is {', '.join(self.shard_paths)}" if self.shard_paths
                 else "no shard file of its key is left")
        return (f"{self.where}: catalog entry is damaged ({self.reason}; shard key {self.shard_key}, {about}); "
                "rerun `ghnerf distill` with the arguments that wrote it to repair it")


def damaged_error(damaged: list[DamagedEntry]) -> CatalogDamagedError:
    more = "".join(f"\n  {d.message()}" for d in damaged[1:])
    return CatalogDamagedError(damaged[0].message() + (f"\n{len(damaged) - 1} more damaged catalog entr"
                                                       f"{'y' if len(damaged) == 2 else 'ies'}:{more}" if more else ""))


def slot(e: CatalogEntry) -> tuple:
    return (e.dataset_id, e.teacher, e.subject, tuple(e.frame_ids))


@dataclass
class CatalogState:
    """What a catalog says is in force (:meth:`Catalog.state`).

    Attributes:
        current: per slot the entry that serves (newest of the in-force key with its file present).
        missing: per slot whose in-force key has no file left, its newest entry.
        damaged: catalog files that cannot be read.
    """

    current: list[CatalogEntry]
    missing: list[CatalogEntry]
    damaged: list[DamagedEntry]


@lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of this checkout (``+dirty`` when modified), else the package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return "ghnerf-distill-" + version("ghnerf-distill")
        except PackageNotFoundError:
            return "unknown"


def host_name() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001
        return socket.gethostname()


def now_utc() -> datetime:
    """Current UTC time at millisecond precision (what the Parquet timestamp columns hold)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Catalog:
    """Read and append catalog entries under ``<root>/catalog/``."""

    def __init__(self, root: StorageRoot):
        self.root = root

    def add(self, entry: CatalogEntry) -> str:
        """Append an entry (atomic file write); returns its relative path."""
        table = pa.Table.from_pylist([entry.__dict__], schema=CATALOG_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        rel = f"{CATALOG_DIR}/{entry.shard_key}-{uuid.uuid4().hex[:8]}.parquet"
        self.root.write_bytes(rel, sink.getvalue().to_pybytes())
        return rel

    def scan(self, prefix: str = "") -> tuple[list[CatalogEntry], list[DamagedEntry]]:
        """Every readable entry (oldest first) and every damaged catalog file; ``prefix``: only the files of
        shard keys starting with it (``"<key>-"``: one key's entries)."""
        out, damaged = [], []
        for rel in self.root.list(CATALOG_DIR, ".parquet", prefix=prefix):
            try:
                out.extend(self._read(rel))
            except CatalogDamagedError as exc:
                key = rel.rsplit("/", 1)[-1].rsplit("-", 1)[0]
                damaged.append(DamagedEntry(rel, self.root.describe(rel), key, str(exc),
                                            tuple(self.shard_files(key))))
        return sorted(out, key=lambda e: e.created_at), damaged

    def entries(self) -> list[CatalogEntry]:
        """Every entry, oldest first.

        Raises:
            CatalogDamagedError: a catalog file cannot be read (all such files are named).
        """
        entries, damaged = self.scan()
        if damaged:
            raise damaged_error(damaged)
        return entries

    def state(self, dataset_id: str | None = None, teacher: str | None = None) -> CatalogState:
        """The entries in force, the slots whose shard file is missing, and the damaged catalog files.

        Per *slot* (dataset, teacher, subject, frames) the newest entry's shard key is in force: a shard
        rewritten after a changed input or teacher supersedes the old one, and two runs that raced on the same
        key count once (the newest of them whose file is present serves).
        """
        entries, damaged = self.scan()
        current, missing = self.in_force([e for e in entries if (not dataset_id or e.dataset_id == dataset_id)
                                          and (not teacher or e.teacher == teacher)])
        if teacher:
            damaged = [d for d in damaged if not d.teachers or teacher in d.teachers]
        return CatalogState(current, missing, damaged)

    def in_force(self, entries: list[CatalogEntry]) -> tuple[list[CatalogEntry], list[CatalogEntry]]:
        """``(current, missing)`` of ``entries`` (oldest first), as :meth:`state` defines them."""
        slots: dict[tuple, list[CatalogEntry]] = {}
        for e in entries:
            slots.setdefault(slot(e), []).append(e)
        current, missing = [], []
        for es in slots.values():
            key = es[-1].shard_key
            present = [e for e in es if e.shard_key == key and self.root.exists(e.shard_path)]
            if present:
                current.append(present[-1])
            else:
                missing.append(es[-1])
        return current, missing

    def current(self, dataset_id: str | None = None, teacher: str | None = None) -> list[CatalogEntry]:
        """The entries in force (see :meth:`state`), optionally filtered; slots without a file are left out."""
        return self.state(dataset_id, teacher).current

    def _read(self, rel: str) -> list[CatalogEntry]:
        """The entries of one catalog file; CatalogDamagedError(reason) when it cannot be read."""
        try:
            table = pq.read_table(pa.BufferReader(self.root.read_bytes(rel)))
            schema = table.schema.remove_metadata()
            if not any(schema.equals(s.remove_metadata()) for s in (CATALOG_SCHEMA, CATALOG_SCHEMA_V1)):
                raise ValueError("its columns are not a catalog entry's")
            entries = [CatalogEntry(**row) for row in table.to_pylist()]
        except FileNotFoundError:
            return []  # removed between listing and reading
        except (pa.ArrowException, ValueError, TypeError, OSError) as exc:
            reason = "truncated or not Parquet" if isinstance(exc, (pa.ArrowInvalid, OSError)) else str(exc)
            raise CatalogDamagedError(reason) from exc
        if not entries:
            raise CatalogDamagedError("it holds no entry")
        return entries

    def find(self, shard_key: str) -> list[CatalogEntry]:
        """Entries of ``shard_key`` whose shard file exists, newest last (reads only that key's files; damaged ones
        are skipped: :meth:`scan` names them)."""
        entries, _ = self.scan(prefix=f"{shard_key}-")
        return [e for e in entries if e.shard_key == shard_key and self.root.exists(e.shard_path)]

    def shard_files(self, shard_key: str) -> list[str]:
        """Shard files of ``shard_key`` in the store (``shards/<dataset id>/<teacher>/<key>-<uid>.parquet``)."""
        found = []
        for dataset_dir in self.root.list(SHARDS_DIR):
            for teacher_dir in self.root.list(dataset_dir):
                found += self.root.list(teacher_dir, ".parquet", prefix=f"{shard_key}-")
        return found
