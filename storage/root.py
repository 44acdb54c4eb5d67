"""A storage root: a local folder or any fsspec URL (``s3://bucket/prefix``), with atomic writes.

Local writes go to a temporary file in the destination folder and are renamed
into place. Object stores have no rename, but a single PUT is atomic: the object
appears whole or not at all, so there we write the final key directly.

Opening a root creates nothing: folders appear with the first file written, so
a read-only command given a wrong path leaves no empty folder behind.
:meth:`StorageRoot.check` fails fast, in one line, on a root that does not exist
(for reading) or cannot be reached (credentials, endpoint, bucket).
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from datetime import datetime
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ghnerf.base.errors import GHNeRFError
from storage.errors import StorageAccessError, StoreNotFoundError

S3_PROTOCOLS = ("s3", "s3a")
PROBE_CONNECT_TIMEOUT_S = 5


def parse_storage_options(pairs: list[str] | None) -> dict | None:
    """``--storage-option KEY=VALUE`` pairs as fsspec options (values parsed as JSON when they are JSON:
    ``anon=true``, ``client_kwargs={"region_name": "eu-west-1"}``; otherwise kept as strings)."""
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GHNeRFError(f"--storage-option expects KEY=VALUE (e.g. endpoint_url=http://127.0.0.1:9000), "
                              f"got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


class StorageRoot:
    """Files under one root, addressed by '/'-separated relative paths.

    Args:
        url: local path or fsspec URL.
        storage_options: passed to fsspec (e.g. ``{"endpoint_url": ...}``, ``{"key": ..., "secret": ...}`` for S3).
    Raises:
        StorageAccessError: the URL's protocol is unknown or its options are invalid.
    """

    def __init__(self, url: str | Path, storage_options: dict | None = None):
        self.url = str(url)
        self.storage_options = storage_options or {}
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError, TypeError) as exc:
            raise StorageAccessError(f"{self.url}: cannot open this storage root ({type(exc).__name__}: {exc}); "
                                     "check the URL and --storage-option values") from exc
        self.is_local = isinstance(self.fs, LocalFileSystem)

    @property
    def protocol(self) -> str:
        p = self.fs.protocol
        return p[0] if isinstance(p, (tuple, list)) else p

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

    def walk(self, rel_dir: str) -> list[tuple[str, float | None]]:
        """Every file under ``rel_dir`` (recursively, dot-files included) with its modification time
        (seconds since the epoch; None when the backend does not say)."""
        d = self.full(rel_dir)
        self.fs.invalidate_cache(d)
        try:
            found = self.fs.find(d, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            out.append((posixpath.relpath(path.split("://", 1)[-1], self.base.split("://", 1)[-1]), _mtime(info)))
        return sorted(out)

    def describe(self, rel: str) -> str:
        return self.full(rel) if self.is_local else f"{self.protocol}://{self.full(rel)}"

    def check(self, write: bool = False) -> None:
        """Fail fast when this root cannot be used, with one line saying what is missing.

        Args:
            write: the caller will write here (a missing local folder is then fine; a missing bucket is not).
        Raises:
            StoreNotFoundError: reading a root that does not exist.
            StorageAccessError: credentials or endpoint missing, access denied, no such bucket.
        """
        if self.is_local:
            if not write and not os.path.isdir(self.base):
                raise StoreNotFoundError(f"{self.base}: no such storage root (nothing was created); pass the --out "
                                         "of an earlier `ghnerf distill`")
            return
        fs = self._probe_fs()
        try:
            found = fs.exists(self.base)
            if not found and write:
                bucket = self.base.split("/", 1)[0]
                if not fs.exists(bucket):
                    raise StorageAccessError(f"{self.url}: bucket {bucket!r} does not exist at "
                                             f"{self._endpoint()}; create it first")
        except GHNeRFError:
            raise
        except Exception as exc:  # noqa: BLE001 -- botocore / fsspec raise many types; each gets a sentence
            raise StorageAccessError(f"{self.url}: {self._explain(exc)}") from exc
        if not found and not write:
            raise StoreNotFoundError(f"{self.url}: no such storage root at {self._endpoint()}; pass the --out of "
                                     "an earlier `ghnerf distill`")

    def _probe_fs(self):
        """The file system for :meth:`check`: for S3 one that tries once and gives up soon (no retry loop)."""
        if self.protocol not in S3_PROTOCOLS:
            return self.fs
        opts = dict(self.storage_options)
        config = {**opts.get("config_kwargs", {}), "retries": {"max_attempts": 1, "mode": "standard"},
                  "connect_timeout": PROBE_CONNECT_TIMEOUT_S}
        fs = fsspec.filesystem(self.protocol, **{**opts, "config_kwargs": config, "skip_instance_cache": True})
        fs.retries = 1
        return fs

    def _endpoint(self) -> str:
        opts = self.storage_options
        return (opts.get("endpoint_url") or opts.get("client_kwargs", {}).get("endpoint_url")
                or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                or "the default AWS endpoint")

    def _explain(self, exc: Exception) -> str:
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
            return ("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
                    "--storage-option key=... --storage-option secret=... (anon=true for a public bucket)")
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError") \
                or isinstance(exc, (ConnectionError, TimeoutError)):
            return (f"cannot reach the S3 endpoint {self._endpoint()} ({exc}); for MinIO or another S3-compatible "
                    "server pass --storage-option endpoint_url=http://HOST:PORT (or set AWS_ENDPOINT_URL)")
        if isinstance(exc, PermissionError) or name == "ClientError":
            return (f"access denied ({exc}); check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                    "--storage-option key=... secret=...) and the bucket's permissions")
        return f"cannot use this storage root ({name}: {exc})"


def _mtime(info: dict) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return None
