"""Target shards: Parquet files of target rows, written atomically and verified on read.

A shard is written in memory (pyarrow, zstd), hashed, then stored under
``shards/<dataset_id>/<teacher>/<shard_key>-<uid>.parquet`` where ``uid`` is the
start of the file's own sha256: two runs writing the same shard never overwrite
each other's file (their rows carry different times), the catalog decides which
one is current, and a shard whose catalog entry was lost or damaged can still be
verified from its name alone (:func:`named_sha_matches`) and registered again.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.codec import decode_array, encode_array, pack_mask, unpack_mask
from storage.errors import SchemaMismatchError, ShardIntegrityError
from storage.root import StorageRoot
from storage.schemas import TARGET_SCHEMA

SHARD_UID_CHARS = 16  # hex digits of the file's sha256 in its name
SHARD_KEY_CHARS = 32  # hex digits of a shard key (ghnerf.app.shard_planning.ShardPlan.key)
SHARD_NAME = re.compile(rf"[0-9a-f]{{{SHARD_KEY_CHARS}}}-[0-9a-f]{{{SHARD_UID_CHARS}}}\.parquet")
SHARD_TEMP_NAME = re.compile(rf"\.({SHARD_NAME.pattern})\.[0-9a-f]{{32}}\.tmp")  # storage.root's temporary files
ZSTD_LEVEL = 3  # zstd's default: level 9 buys ~10 % on byte-planar heatmaps at 3x the time


@dataclass(frozen=True, eq=False)
class TargetRow:
    """One target before encoding (lineage columns are added by the writer)."""

    subject: str
    frame_index: int
    frame_id: int
    camera: str
    camera_index: int
    kind: str
    array: np.ndarray
    stride: int
    image_sha256: str
    mask_sha256: str | None = None
    mask: np.ndarray | None = None
    joint_conf: np.ndarray | None = None
    joint_missing: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DecodedTarget:
    """A target read back from a shard."""

    target_id: str
    subject: str
    frame_id: int
    camera: str
    kind: str
    array: np.ndarray
    stride: int
    mask: np.ndarray | None
    joint_conf: np.ndarray | None
    joint_missing: np.ndarray | None


def target_id(dataset_id: str, row: TargetRow, teacher: str, config_hash: str) -> str:
    """Stable id of a target: same dataset, frame, camera, kind, teacher and config -> same id."""
    key = f"{dataset_id}|{row.subject}|{row.frame_id}|{row.camera}|{row.kind}|{teacher}|{config_hash}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def build_table(rows: Sequence[TargetRow], lineage: dict) -> pa.Table:
    """Encode rows into a table of :data:`TARGET_SCHEMA`; ``lineage`` holds the per-shard lineage columns."""
    cols: dict[str, list] = {f.name: [] for f in TARGET_SCHEMA}
    for r in rows:
        enc, data, scale, shape = encode_array(r.kind, r.array)
        values = {
            "target_id": target_id(lineage["dataset_id"], r, lineage["teacher"], lineage["config_hash"]),
            "subject": r.subject, "frame_index": r.frame_index, "frame_id": r.frame_id, "camera": r.camera,
            "camera_index": r.camera_index, "kind": r.kind, "shape": shape, "encoding": enc, "data": data,
            "scale": scale, "mask": pack_mask(r.mask), "stride": r.stride,
            "joint_conf": None if r.joint_conf is None else [float(v) for v in r.joint_conf],
            "joint_missing": None if r.joint_missing is None else [bool(v) for v in r.joint_missing],
            "image_sha256": r.image_sha256, "mask_sha256": r.mask_sha256, **lineage,
        }
        for k in cols:
            cols[k].append(values[k])
    return pa.Table.from_pydict(cols, schema=TARGET_SCHEMA)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=ZSTD_LEVEL, use_dictionary=[
        "dataset_id", "subject", "camera", "kind", "encoding", "teacher", "teacher_version", "weights_sha256",
        "config_hash", "code_version", "flow_run_id"])
    return sink.getvalue().to_pybytes()


def shard_rel_path(dataset_id: str, teacher: str, shard_key: str, sha256: str) -> str:
    """Where a shard with this content hash is stored."""
    return f"shards/{dataset_id}/{teacher}/{shard_key}-{sha256[:SHARD_UID_CHARS]}.parquet"


def is_shard_file(rel_path: str) -> bool:
    """``rel_path`` is where :func:`shard_rel_path` puts shards: ``shards/<dataset id>/<teacher>/<key>-<uid>.parquet``."""
    parts = rel_path.split("/")
    return len(parts) == 4 and parts[0] == "shards" and SHARD_NAME.fullmatch(parts[3]) is not None


def is_shard_temp_file(rel_path: str) -> bool:
    """``rel_path`` is a temporary file of an interrupted write of a shard (``.<shard name>.<uid>.tmp``)."""
    parts = rel_path.split("/")
    return len(parts) == 4 and parts[0] == "shards" and SHARD_TEMP_NAME.fullmatch(parts[3]) is not None


def named_sha_matches(rel_path: str, data: bytes) -> bool:
    """``data`` is the file its name says (the name ends with the start of its sha256)."""
    uid = rel_path.rsplit("/", 1)[-1].removesuffix(".parquet").rsplit("-", 1)[-1]
    return len(uid) == SHARD_UID_CHARS and hashlib.sha256(data).hexdigest().startswith(uid)


def write_shard(root: StorageRoot, rel_path: str, table: pa.Table) -> tuple[str, int]:
    """Write ``table`` to ``rel_path`` atomically; returns (sha256, bytes)."""
    data = table_bytes(table)
    root.write_bytes(rel_path, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def read_shard(root: StorageRoot, rel_path: str, expected_sha256: str) -> pa.Table:
    """Read a shard, refusing it when it is missing, truncated or altered."""
    where = root.describe(rel_path)
    try:
        data = root.read_bytes(rel_path)
    except FileNotFoundError as exc:
        raise ShardIntegrityError(f"{where}: shard file is missing; rerun `ghnerf distill` to rewrite it") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ShardIntegrityError(f"{where}: shard is truncated or altered (sha256 {digest[:12]}..., catalog says "
                                  f"{expected_sha256[:12]}...); delete it and rerun `ghnerf distill`")
    table = pq.read_table(pa.BufferReader(data))
    if not table.schema.remove_metadata().equals(TARGET_SCHEMA.remove_metadata()):
        raise SchemaMismatchError(where, TARGET_SCHEMA, table.schema)
    return table


def decode_rows(table: pa.Table) -> list[DecodedTarget]:
    out = []
    for r in table.to_pylist():
        arr = decode_array(r["encoding"], r["data"], r["scale"], r["shape"])
        mask = unpack_mask(r["mask"], tuple(r["shape"][1:])) if r["mask"] is not None else None
        out.append(DecodedTarget(
            target_id=r["target_id"], subject=r["subject"], frame_id=r["frame_id"], camera=r["camera"],
            kind=r["kind"], array=arr, stride=r["stride"], mask=mask,
            joint_conf=None if r["joint_conf"] is None else np.array(r["joint_conf"], np.float32),
            joint_missing=None if r["joint_missing"] is None else np.array(r["joint_missing"], bool)))
    return out
