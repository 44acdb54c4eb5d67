"""Every Parquet schema of the product, declared once.

Target shards: one row per (subject, frame, camera, target kind). The target
array is stored compactly in ``data`` (see :mod:`storage.codec`) with its
``shape`` and ``encoding``; lineage columns repeat per row so a single shard file
is self-describing. The catalog has one row per shard.
"""

import pyarrow as pa

SCHEMA_VERSION = "1"

TARGET_SCHEMA = pa.schema(
    [
        pa.field("target_id", pa.string(), nullable=False),
        pa.field("dataset_id", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("frame_id", pa.int32(), nullable=False),
        pa.field("camera", pa.string(), nullable=False),
        pa.field("camera_index", pa.int16(), nullable=False),
        pa.field("kind", pa.string(), nullable=False, metadata={"values": "heatmap | keypoints | cse"}),
        pa.field("shape", pa.list_(pa.int32()), nullable=False),
        pa.field("encoding", pa.string(), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
        pa.field("scale", pa.float32(), nullable=False),
        pa.field("mask", pa.binary(), metadata={"encoding": "numpy packbits of the (h, w) foreground, cse only"}),
        pa.field("stride", pa.int16(), nullable=False, metadata={"unit": "image pixels per target cell"}),
        pa.field("joint_conf", pa.list_(pa.float32()), metadata={"order": "BODY_25"}),
        pa.field("joint_missing", pa.list_(pa.bool_()), metadata={"order": "BODY_25"}),
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("mask_sha256", pa.string()),
        pa.field("teacher", pa.string(), nullable=False),
        pa.field("teacher_version", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
        pa.field("code_version", pa.string(), nullable=False),
        pa.field("flow_run_id", pa.string()),
        pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ],
    metadata={"schema_version": SCHEMA_VERSION, "keypoint_order": "BODY_25",
              "coordinates": "undistorted image pixels"},
)

INPUT_TYPE_V1 = pa.struct([("path", pa.string()), ("sha256", pa.string())])
INPUT_TYPE = pa.struct([("path", pa.string()), ("sha256", pa.string()),
                        pa.field("size", pa.int64(), metadata={"unit": "bytes"}),
                        pa.field("mtime_ns", pa.int64(), metadata={"unit": "ns since the epoch"})])
FAILURE_TYPE = pa.struct([("key", pa.string()), ("error", pa.string())])

CATALOG_SCHEMA = pa.schema(
    [
        pa.field("shard_key", pa.string(), nullable=False),
        pa.field("shard_path", pa.string(), nullable=False, metadata={"relative_to": "storage root"}),
        pa.field("shard_sha256", pa.string(), nullable=False),
        pa.field("shard_bytes", pa.int64(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("dataset_id", pa.string(), nullable=False),
        pa.field("dataset_root", pa.string(), nullable=False),
        pa.field("layout", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("frame_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("kinds", pa.list_(pa.string()), nullable=False),
        pa.field("inputs", pa.list_(INPUT_TYPE), nullable=False),
        pa.field("teacher", pa.string(), nullable=False),
        pa.field("teacher_version", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
        pa.field("config_json", pa.string(), nullable=False),
        pa.field("code_version", pa.string(), nullable=False),
        pa.field("flow_run_id", pa.string()),
        pa.field("host", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("failures", pa.list_(FAILURE_TYPE), nullable=False),
        pa.field("consistency_json", pa.string()),
    ],
    metadata={"schema_version": SCHEMA_VERSION},
)

# Catalog entries written before input sizes and mtimes were recorded (read, never written).
CATALOG_SCHEMA_V1 = CATALOG_SCHEMA.set(CATALOG_SCHEMA.get_field_index("inputs"),
                                       pa.field("inputs", pa.list_(INPUT_TYPE_V1), nullable=False))
