"""Planning a distillation: the dataset's frames grouped into shards (:class:`ShardPlan`), every input file hashed.

Shard key = sha256 of (dataset id, subject, frames, teacher name + version + weights sha256, config hash, content
hash of every input file): a rerun skips every shard already written, a changed teacher or input recomputes only
what changed.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ghnerf.app.distill_config import DistillConfig
from ghnerf.base.fileio import file_sha256
from ghnerf.base.kinds import TargetKind
from ghnerf.data import open_dataset
from ghnerf.data.records import MultiViewFrame
from storage.inputs import input_record
from teachers.base import Teacher

MB = 1 << 20
# Stored bytes per target cell, measured on Gaussian heatmaps / embeddings (benchmarks/distill_overhead.py).
EST_BYTES_PER_CELL = {TargetKind.HEATMAP: 25 * 0.02, TargetKind.CSE: 16 * 1.2, TargetKind.KEYPOINTS: 0.0}


@dataclass(frozen=True)
class ShardPlan:
    """One shard to produce (all cameras of a run of consecutive frames of one subject)."""

    dataset_root: str
    layout: str
    dataset_id: str
    subject: str
    frame_indices: tuple[int, ...]
    frame_ids: tuple[int, ...]
    teacher: str
    teacher_version: str
    weights_sha256: str
    config_hash: str
    config_json: str
    inputs: tuple[tuple[str, str], ...]  # (path relative to the dataset root, sha256)
    input_stats: tuple[tuple[str, int | None, int | None], ...] = ()  # (path, size, mtime_ns): not in the key

    def input_records(self) -> list[dict]:
        """The catalog's ``inputs``: path, sha256 and, beside them, size and mtime (:mod:`storage.inputs`)."""
        stats = {p: (size, mtime) for p, size, mtime in self.input_stats}
        return [{"path": p, "sha256": s, "size": stats.get(p, (None, None))[0],
                 "mtime_ns": stats.get(p, (None, None))[1]} for p, s in self.inputs]

    @property
    def key(self) -> str:
        payload = json.dumps([self.dataset_id, self.subject, self.frame_ids, self.teacher, self.teacher_version,
                              self.weights_sha256, self.config_hash, self.inputs])
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    @property
    def shard_dir(self) -> str:
        return f"shards/{self.dataset_id}/{self.teacher}"


def dataset_identity(root: Path, reader) -> str:
    """``<folder name>-<hash of subject names and calibration files>``: stable while the calibration is."""
    h = hashlib.sha256(reader.layout.encode())
    for name in reader.subjects():
        seq = reader.sequence(name)
        cal = getattr(seq, "annots_path", None) or seq.cameras_path
        h.update(name.encode())
        h.update(file_sha256(cal).encode())
    return f"{root.resolve().name}-{h.hexdigest()[:10]}"


def _frame_inputs(frame: MultiViewFrame, teacher: Teacher) -> list[Path]:
    paths: list[Path] = list(frame.annotation_paths)
    for v in frame.views:
        paths.append(v.image_path)
        paths.extend(v.mask_paths)
        if "surface" in teacher.needs and v.surface_path is not None:
            paths.append(v.surface_path)
    return paths


def frames_per_shard(cfg: DistillConfig, teacher: Teacher, cameras: int, height: int, width: int) -> int:
    if cfg.frames_per_shard:
        return cfg.frames_per_shard
    cells = -(-height // cfg.stride) * -(-width // cfg.stride)
    per_view = sum(EST_BYTES_PER_CELL[k.value] * cells + 400 for k in teacher.kinds)
    return max(1, int(cfg.shard_mb * MB // max(per_view * cameras, 1)))


def plan_shards(dataset_root: str | Path, cfg: DistillConfig, teacher: Teacher) -> list[ShardPlan]:
    """Group the dataset's frames into shards and hash every input file."""
    root = Path(dataset_root)
    reader = open_dataset(root)
    dataset_id = dataset_identity(root, reader)
    subjects = list(cfg.subjects) if cfg.subjects else reader.subjects()
    plans = []
    for name in subjects:
        seq = reader.sequence(name)
        n = seq.num_frames if cfg.max_frames is None else min(seq.num_frames, cfg.max_frames)
        h, w = seq.image_sizes[0]
        step = frames_per_shard(cfg, teacher, seq.num_cameras, h, w)
        for start in range(0, n, step):
            plans.append(shard_plan(root, reader, dataset_id, cfg, teacher, name,
                                    tuple(range(start, min(n, start + step)))))
    return plans


def shard_plan(root: Path, reader, dataset_id: str, cfg: DistillConfig, teacher: Teacher, subject: str,
               indices: tuple[int, ...]) -> ShardPlan:
    """The plan of one shard: frames ``indices`` of ``subject``, every input file hashed (size and mtime beside)."""
    seq = reader.sequence(subject)
    frames = [seq.frame(i) for i in indices]
    records = {}
    for fr in frames:
        for p in _frame_inputs(fr, teacher):
            rel = str(p.relative_to(root))
            records[rel] = records.get(rel) or input_record(root, rel)
    return ShardPlan(
        dataset_root=str(root.resolve()), layout=reader.layout, dataset_id=dataset_id, subject=subject,
        frame_indices=indices, frame_ids=tuple(fr.frame_id for fr in frames), teacher=teacher.name,
        teacher_version=teacher.version, weights_sha256=teacher.weights_digest,
        config_hash=cfg.config_hash(), config_json=json.dumps(cfg.target_config(), sort_keys=True),
        inputs=tuple(sorted((r["path"], r["sha256"]) for r in records.values())),
        input_stats=tuple(sorted((r["path"], r["size"], r["mtime_ns"]) for r in records.values())))
