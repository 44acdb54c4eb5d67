"""A storage root: a local folder or any fsspec URL (``s3://bucket/prefix``), with atomic writes.

Local writes go to a temporary file in the destination folder and are renamed
into place. Object stores have no rename, but a single PUT is atomic: the object
appears whole or not at all, so there we write the final key directly.
"""

import os
import posixpath
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem


class StorageRoot:
    """Files under one root, addressed by '/'-separated relative paths.

    Args:
        url: local path or fsspec URL.
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` for S3).
    """

    def __init__(self, url: str | Path, storage_options: dict | None = None):
        self.url = str(url)
        self.fs, self.base = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.storage_options = storage_options or {}
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def full(self, rel: str) -> str:
        return posixpath.join(self.base, rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self.full(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = posixpath.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def delete(self, rel: str) -> None:
        """Remove one file / object."""
        self.fs.rm(self.full(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.full(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.full(rel))

    def list(self, rel_dir: str, suffix: str = "", prefix: str = "") -> list[str]:
        """Relative paths of the files directly under ``rel_dir`` named ``prefix*suffix`` (sorted; no dot-files)."""
        d = self.full(rel_dir)
        self.fs.invalidate_cache(d)
        try:
            names = [posixpath.basename(p.rstrip("/")) for p in
                     (self.fs.glob(posixpath.join(d, f"{prefix}*{suffix}")) if prefix else self.fs.ls(d, detail=False))]
        except FileNotFoundError:
            return []
        return sorted(posixpath.join(rel_dir, n) for n in names
                      if n.startswith(prefix) and n.endswith(suffix) and not n.startswith("."))

    def describe(self, rel: str) -> str:
        return self.full(rel) if self.is_local else f"{self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol}://{self.full(rel)}"
