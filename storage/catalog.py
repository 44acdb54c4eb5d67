"""The lineage catalog: one small Parquet file per written shard, under ``catalog/``.

One file per entry (never an in-place update) means concurrent distill runs
cannot corrupt the catalog, and it works the same on a local disk and on object
storage. When several entries share a shard key (two runs raced, or a rerun after
a crash), :meth:`Catalog.current` keeps the newest one whose file is present.
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

from storage.root import StorageRoot
from storage.schemas import CATALOG_SCHEMA

CATALOG_DIR = "catalog"


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
    inputs: list[dict]
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

    def entries(self) -> list[CatalogEntry]:
        """Every entry, oldest first."""
        out = []
        for rel in self.root.list(CATALOG_DIR, ".parquet"):
            out.extend(self._read(rel))
        return sorted(out, key=lambda e: e.created_at)

    def current(self, dataset_id: str | None = None, teacher: str | None = None) -> list[CatalogEntry]:
        """The entries in force, optionally filtered.

        Per *slot* (dataset, teacher, subject, frames) the newest entry whose shard file
        exists wins: a shard rewritten after a changed input or teacher supersedes the
        old one, and two runs that raced on the same shard count once.
        """
        latest: dict[tuple, CatalogEntry] = {}
        for e in self.entries():
            if (dataset_id and e.dataset_id != dataset_id) or (teacher and e.teacher != teacher):
                continue
            if self.root.exists(e.shard_path):
                latest[(e.dataset_id, e.teacher, e.subject, tuple(e.frame_ids))] = e
        return list(latest.values())

    def _read(self, rel: str) -> list[CatalogEntry]:
        table = pq.read_table(pa.BufferReader(self.root.read_bytes(rel)))
        return [CatalogEntry(**row) for row in table.to_pylist()]

    def find(self, shard_key: str) -> list[CatalogEntry]:
        """Entries of ``shard_key`` whose shard file exists, newest last (reads only that key's files)."""
        found = []
        for rel in self.root.list(CATALOG_DIR, ".parquet", prefix=f"{shard_key}-"):
            found.extend(e for e in self._read(rel) if e.shard_key == shard_key and self.root.exists(e.shard_path))
        return sorted(found, key=lambda e: e.created_at)
