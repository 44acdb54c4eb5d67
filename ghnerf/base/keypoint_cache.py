"""A teacher's keypoints of images it has seen, kept on disk between runs (keyed by the image's bytes).

A frozen pose network used as the student's encoder (``ghnerf-mediapipe*``) sees the same training photographs
in every run on a dataset: the nightly retraining, a fine-tuning, each row of a benchmark. Its heatmaps are drawn
from its keypoints (``HeatmapCodec.encode``), so the keypoints are all that needs keeping: 25 x 3 numbers per
image. They are stored in one SQLite file per teacher version, weights and settings (``namespace``), under
:func:`cache_directory`, keyed by a SHA-1 of the image's shape and bytes: an image whose pixels changed is a new
key, never a stale hit. Several processes may share the file (SQLite's locking, WAL journal).

A file that cannot be opened or read is left as it is (it may be someone else's) and said once; the run goes on
with the in-memory part only.
"""

import hashlib
import os
import sqlite3
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

CACHE_DIR_VAR = "GHNERF_CACHE_DIR"  # a folder, or "none" for no disk cache
MEMORY_ITEMS = 200_000  # keypoints kept in memory (about 600 bytes each)


def cache_directory(environ: dict | None = None) -> Path | None:
    """Where the keypoint caches live: ``GHNERF_CACHE_DIR`` when set ("none": nowhere, memory only), else
    ``$XDG_CACHE_HOME/ghnerf`` or ``~/.cache/ghnerf``."""
    env = os.environ if environ is None else environ
    value = env.get(CACHE_DIR_VAR)
    if value is not None:
        return None if value.strip().lower() in ("", "none") else Path(value)
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ghnerf"


def image_key(image: np.ndarray) -> bytes:
    """A key for an image's exact pixels (shape, dtype and bytes)."""
    digest = hashlib.sha1(f"{image.shape}{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.digest()


class KeypointCache:
    """Keypoints (J, 3) by :func:`image_key`, in memory and in ``DIR/keypoints-<namespace>.sqlite``.

    Args:
        namespace: what the keypoints depend on besides the image (teacher version, weights digest, settings), as a
            file-name-safe string.
        joints: rows of a keypoint array.
        directory: the cache folder (default :func:`cache_directory`; None: memory only).
    """

    def __init__(self, namespace: str, joints: int, directory: Path | None | str = "default"):
        self.joints = joints
        directory = cache_directory() if directory == "default" else directory
        self.path = None if directory is None else Path(directory) / f"keypoints-{namespace}.sqlite"
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self.problem: str | None = None  # why the disk part is off, once said

    def __getstate__(self):  # a connection does not pickle: a copy reconnects when it needs to
        return {**self.__dict__, "_db": None}

    def get(self, key: bytes) -> np.ndarray | None:
        """The keypoints stored for ``key``, or None."""
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute("SELECT value FROM keypoints WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            self._disable(exc)
            return None
        if row is None:
            return None
        if len(row[0]) != self.joints * 3 * 8:
            self._disable(f"a row of {len(row[0])} bytes, not {self.joints * 3 * 8}")
            return None
        keypoints = np.frombuffer(row[0], dtype="<f8").reshape(self.joints, 3).copy()
        self._remember(key, keypoints)
        return keypoints

    def put(self, key: bytes, keypoints: np.ndarray) -> None:
        """Keep ``keypoints`` (J, 3) for ``key``, in memory and on disk."""
        keypoints = np.asarray(keypoints, dtype="<f8")
        if keypoints.shape != (self.joints, 3):
            raise ValueError(f"keypoints of shape {keypoints.shape}, expected ({self.joints}, 3)")
        self._remember(key, keypoints.copy())
        db = self._connect()
        if db is not None:
            try:
                db.execute("INSERT OR IGNORE INTO keypoints (key, value) VALUES (?, ?)", (key, keypoints.tobytes()))
            except sqlite3.Error as exc:
                self._disable(exc)

    def _remember(self, key: bytes, keypoints: np.ndarray) -> None:
        self._memory[key] = keypoints
        if len(self._memory) > MEMORY_ITEMS:
            self._memory.popitem(last=False)

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self.path is None or self.problem is not None:
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # autocommit: each put is kept
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS keypoints (key BLOB PRIMARY KEY, value BLOB NOT NULL)")
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        self._db = db
        return db

    def _disable(self, why) -> None:
        self.problem = str(why)
        self._db = None
        warnings.warn(f"the keypoint cache {self.path} cannot be used ({self.problem}); going on without it (the "
                      f"network runs on every new image). Move the file away, or set {CACHE_DIR_VAR} to another "
                      "folder or to none", RuntimeWarning, stacklevel=3)
