"""Shards and catalog: round trips, compression, integrity, concurrent writers."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from ghnerf.base.keypoint_codec import HeatmapCodec
from storage.catalog import Catalog, CatalogEntry, now_utc
from storage.codec import decode_array, encode_array
from storage.errors import ShardIntegrityError
from storage.root import StorageRoot
from storage.schemas import TARGET_SCHEMA
from storage.shards import TargetRow, build_table, decode_rows, read_shard, table_bytes, write_shard

LINEAGE = {"dataset_id": "ds", "teacher": "t", "teacher_version": "1", "weights_sha256": "none",
           "config_hash": "c0ffee", "code_version": "test", "flow_run_id": None}


def _rows(rng):
    codec = HeatmapCodec(stride=2, sigma=7.0)
    kp = np.column_stack([rng.uniform(20, 236, 25), rng.uniform(20, 236, 25), np.ones(25)])
    kp[3, 2] = 0
    hm, missing = codec.encode(kp, 256, 256)
    cse = rng.normal(size=(16, 128, 128)).astype(np.float32)
    cse /= np.linalg.norm(cse, axis=0, keepdims=True)
    mask = rng.random((128, 128)) > 0.5
    common = dict(subject="s", frame_index=0, frame_id=1, camera="c0", camera_index=0, stride=2,
                  image_sha256="abc", mask_sha256="def")
    return kp, [
        TargetRow(kind="heatmap", array=hm, joint_conf=kp[:, 2], joint_missing=missing, **common),
        TargetRow(kind="keypoints", array=kp.astype(np.float32), joint_missing=missing, **common),
        TargetRow(kind="cse", array=cse, mask=mask, **common),
    ]


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    kp, rows = _rows(rng)
    root = StorageRoot(tmp_path)
    table = build_table(rows, {**LINEAGE, "created_at": now_utc()})
    assert table.schema.equals(TARGET_SCHEMA)
    sha, nbytes = write_shard(root, "shards/a.parquet", table)
    back = {r.kind: r for r in decode_rows(read_shard(root, "shards/a.parquet", sha))}
    # cse: exact to float16 precision; keypoints: exact float32; masks exact
    np.testing.assert_array_equal(back["cse"].array, rows[2].array.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(back["cse"].mask, rows[2].mask)
    np.testing.assert_array_equal(back["keypoints"].array, rows[1].array)
    # heatmaps: quantised to 1/65535 of the peak, no loss of keypoint accuracy
    assert np.abs(back["heatmap"].array - rows[0].array).max() <= 1 / 65535 + 1e-6
    codec = HeatmapCodec(stride=2, sigma=7.0)
    present = ~rows[0].joint_missing
    err = np.linalg.norm(codec.decode(back["heatmap"].array)[present, :2] - kp[present, :2], axis=1)
    assert err.max() < 0.005
    assert back["heatmap"].joint_missing[3] and not back["heatmap"].joint_missing[0]
    # the file itself is standard Parquet with the declared schema metadata
    assert pq.read_schema(root.full("shards/a.parquet")).metadata[b"keypoint_order"] == b"BODY_25"


def test_heatmaps_are_at_least_30x_smaller_than_float32(tmp_path):
    rng = np.random.default_rng(1)
    heatmaps = [_rows(rng)[1][0] for _ in range(20)]  # 20 views with different keypoints, as in a real shard
    assert not np.array_equal(heatmaps[0].array, heatmaps[1].array)
    table = build_table(heatmaps, {**LINEAGE, "created_at": now_utc()})
    raw = sum(r.array.astype(np.float32).nbytes for r in heatmaps)
    assert len(table_bytes(table)) * 30 <= raw


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete"])
def test_damaged_shard_is_refused(tmp_path, damage):
    rng = np.random.default_rng(2)
    _, rows = _rows(rng)
    root = StorageRoot(tmp_path)
    sha, _ = write_shard(root, "shards/b.parquet", build_table(rows, {**LINEAGE, "created_at": now_utc()}))
    path = tmp_path / "shards" / "b.parquet"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "edit":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        path.unlink()
    with pytest.raises(ShardIntegrityError, match="b.parquet"):
        read_shard(root, "shards/b.parquet", sha)


def test_encoding_of_empty_heatmap():
    enc, data, scale, shape = encode_array("heatmap", np.zeros((25, 4, 4), np.float32))
    assert scale == 0 and decode_array(enc, data, scale, shape).max() == 0


def _entry(key, path, when, frames=(0, 1)):
    return CatalogEntry(shard_key=key, shard_path=path, shard_sha256="x", shard_bytes=1, rows=1, dataset_id="ds",
                        dataset_root="/d", layout="zju", subject="s", frame_ids=list(frames), kinds=["heatmap"],
                        inputs=[{"path": "a.jpg", "sha256": "1"}], teacher="t", teacher_version="1",
                        weights_sha256="none", config_hash="c", config_json="{}", code_version="v", flow_run_id=None,
                        host="h", created_at=when)


def test_catalog_keeps_newest_per_slot_and_ignores_missing_files(tmp_path):
    from datetime import datetime, timedelta, timezone

    root = StorageRoot(tmp_path)
    cat = Catalog(root)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for rel in ("shards/old.parquet", "shards/new.parquet", "shards/other.parquet"):
        root.write_bytes(rel, b"x")
    cat.add(_entry("k1", "shards/old.parquet", t0))
    cat.add(_entry("k2", "shards/new.parquet", t0 + timedelta(seconds=5)))  # same slot, input changed
    cat.add(_entry("k3", "shards/other.parquet", t0, frames=(2, 3)))
    cat.add(_entry("k4", "shards/gone.parquet", t0 + timedelta(seconds=9), frames=(4,)))  # file never written
    current = {e.shard_key for e in cat.current()}
    assert current == {"k2", "k3"}
    assert len(cat.entries()) == 4
    assert [e.shard_key for e in cat.find("k1")] == ["k1"] and cat.find("k4") == []
