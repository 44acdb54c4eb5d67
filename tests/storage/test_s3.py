"""Shards and catalog on object storage, against a real local S3 endpoint (moto server on loopback)."""

import pytest

from storage.catalog import Catalog
from storage.errors import ShardIntegrityError
from storage.root import StorageRoot
from storage.shards import read_shard
from storage.targets import TargetStore
from ghnerf.app.distill import DistillConfig, distill


@pytest.fixture
def s3_endpoint(moto_endpoint):
    boto3 = pytest.importorskip("boto3")
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="targets")
    return moto_endpoint


def test_distill_to_s3_and_read_back(zju_root, s3_endpoint):
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint}, "key": "testing", "secret": "testing"}
    url = "s3://targets/run1"
    cfg = DistillConfig(teacher="gt-joints", frames_per_shard=3)
    assert distill(zju_root, url, cfg, storage_options=opts).counts() == {"written": 2}
    assert distill(zju_root, url, cfg, storage_options=opts).counts() == {"skipped": 2}
    root = StorageRoot(url, opts)
    assert not root.is_local
    entries = Catalog(root).current()
    assert len(entries) == 2 and all(e.shard_path.startswith("shards/") for e in entries)
    store = TargetStore(url, "gt-joints", storage_options=opts)
    assert len(store.keys("heatmap")) == 2 * 3 * 6
    # an object altered in the bucket is refused
    e = entries[0]
    data = root.read_bytes(e.shard_path)
    root.fs.pipe_file(root.full(e.shard_path), data[:-10])
    with pytest.raises(ShardIntegrityError, match="truncated or altered"):
        read_shard(root, e.shard_path, e.shard_sha256)
    assert "s3://" in root.describe(e.shard_path)
