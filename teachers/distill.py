"""Distillation: run a teacher over a dataset and write its targets as verified Parquet shards.

Plain functions (no Prefect): :func:`plan_shards` groups frames into shards and
hashes every input; :func:`run_shard` is one restartable unit (skip if the
catalog already holds a verified shard with the same key, else predict, check,
write, register); :func:`distill` loops over the plan. ``flows/distill.py`` runs
the same two functions as Prefect tasks.

Shard key = sha256 of (dataset id, subject, frames, teacher name + version +
weights sha256, config hash, content hash of every input file): a rerun skips
every shard already written, a changed teacher or input recomputes only what
changed.

Repair: a rerun also mends the store. A shard whose catalog entry is damaged or
lost (the catalog was deleted) is registered again from the shard file when the
file is intact (its name carries its sha256: status ``restored``), else
recomputed; the damaged catalog file is then removed. After the run, duplicate
shard files of its keys (two runs raced) are removed (:mod:`storage.gc`).
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from ghnerf.data import load_surface, load_view, open_dataset
from ghnerf.data.images import pinhole
from ghnerf.data.records import MultiViewFrame
from ghnerf.base.errors import GHNeRFError, NonFiniteError
from ghnerf.base.fileio import file_sha256
from ghnerf.base.hold import hold_point
from storage.catalog import Catalog, CatalogEntry, DamagedEntry, code_version, host_name, now_utc
from storage.errors import ShardIntegrityError
from storage.gc import GC_MIN_AGE_S, GcReport, collect_garbage
from storage.root import StorageRoot
from storage.schemas import TARGET_SCHEMA
from storage.shards import (TargetRow, build_table, decode_rows, named_sha_matches, read_shard, shard_rel_path,
                            table_bytes)
from teachers.base import Teacher, TeacherInput, TeacherOutput
from ghnerf.app.teacher_registry import build_teacher

MB = 1 << 20
# Stored bytes per target cell, measured on Gaussian heatmaps / embeddings (benchmarks/distill_overhead.py).
EST_BYTES_PER_CELL = {"heatmap": 25 * 0.02, "cse": 16 * 1.2, "keypoints": 0.0}


class DistillConfig(BaseModel):
    """What to distill and how (one source of defaults; the target-shaping part is hashed into lineage)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str
    teacher_options: dict[str, str | int | float] = Field(default_factory=dict)
    stride: int = Field(2, ge=1, le=16, description="image pixels per target cell")
    sigma: float = Field(7.0, gt=0, description="heatmap Gaussian sigma in image pixels (OpenPose: 7)")
    frames_per_shard: int | None = Field(None, ge=1, description="override the size-based grouping")
    shard_mb: float = Field(128.0, gt=0, description="target shard size")
    subjects: tuple[str, ...] | None = None
    max_frames: int | None = Field(None, ge=1)

    def target_config(self) -> dict:
        """The options that change target values (what the config hash covers)."""
        return {"teacher": self.teacher, "teacher_options": dict(sorted(self.teacher_options.items())),
                "stride": self.stride, "sigma": self.sigma}

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.target_config(), sort_keys=True).encode()).hexdigest()[:16]

    def build(self) -> Teacher:
        return build_teacher(self.teacher, {**self.teacher_options, "stride": self.stride, "sigma": self.sigma})


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

    @property
    def key(self) -> str:
        payload = json.dumps([self.dataset_id, self.subject, self.frame_ids, self.teacher, self.teacher_version,
                              self.weights_sha256, self.config_hash, self.inputs])
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    @property
    def shard_dir(self) -> str:
        return f"shards/{self.dataset_id}/{self.teacher}"


@dataclass
class ShardResult:
    key: str
    subject: str
    frame_ids: tuple[int, ...]
    status: str  # written | skipped | restored (entry re-registered from an intact shard) | partial | failed
    rows: int = 0
    failures: list[dict] = field(default_factory=list)
    shard_path: str | None = None
    consistency: dict | None = None
    seconds: float = 0.0
    worker: str = ""  # host:pid of the process that ran it (set by the orchestrator)
    peak_rss_mb: float = 0.0  # that process's peak resident memory when the shard was done


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
            indices = tuple(range(start, min(n, start + step)))
            frames = [seq.frame(i) for i in indices]
            hashes = {}
            for fr in frames:
                for p in _frame_inputs(fr, teacher):
                    if p.is_file():
                        hashes[str(p.relative_to(root))] = file_sha256(p)
                    else:
                        hashes[str(p.relative_to(root))] = "missing"
            plans.append(ShardPlan(
                dataset_root=str(root.resolve()), layout=reader.layout, dataset_id=dataset_id, subject=name,
                frame_indices=indices, frame_ids=tuple(fr.frame_id for fr in frames), teacher=teacher.name,
                teacher_version=teacher.version, weights_sha256=teacher.weights_digest,
                config_hash=cfg.config_hash(), config_json=json.dumps(cfg.target_config(), sort_keys=True),
                inputs=tuple(sorted(hashes.items()))))
    return plans


def find_done(plan: ShardPlan, store: StorageRoot) -> CatalogEntry | None:
    """A catalog entry with this shard key whose file is present and intact, if any."""
    for entry in reversed(Catalog(store).find(plan.key)):
        try:
            read_shard(store, entry.shard_path, entry.shard_sha256)
            return entry
        except ShardIntegrityError:
            continue
    return None


def restore_entry(plan: ShardPlan, store: StorageRoot, consistency_fn: Callable | None = None) -> CatalogEntry | None:
    """Register again an intact shard of ``plan`` that has no usable catalog entry (entry damaged or deleted).

    Intact = the file's sha256 starts with the uid in its name, it reads as a target shard, and its lineage
    columns are the plan's. The entry is rebuilt from the shard and the plan: views without rows become
    failures (their messages were in the lost entry), the consistency summary is recomputed from the stored
    keypoints. Returns the new entry, or None when no intact shard of the key is there.
    """
    for rel in reversed(store.list(plan.shard_dir, ".parquet", prefix=f"{plan.key}-")):
        try:
            data = store.read_bytes(rel)
            if not named_sha_matches(rel, data):
                continue
            table = pq.read_table(pa.BufferReader(data))
        except (OSError, pa.ArrowException):
            continue
        if not table.schema.remove_metadata().equals(TARGET_SCHEMA.remove_metadata()) or table.num_rows == 0:
            continue
        expected = {"dataset_id": plan.dataset_id, "teacher": plan.teacher, "teacher_version": plan.teacher_version,
                    "weights_sha256": plan.weights_sha256, "config_hash": plan.config_hash, "subject": plan.subject}
        if any(pc.unique(table.column(k)).to_pylist() != [v] for k, v in expected.items()):
            continue
        if not set(pc.unique(table.column("frame_id")).to_pylist()) <= set(plan.frame_ids):
            continue
        entry = _entry_from_shard(plan, rel, data, table, consistency_fn)
        Catalog(store).add(entry)
        return entry
    return None


def _entry_from_shard(plan: ShardPlan, rel: str, data: bytes, table: pa.Table,
                      consistency_fn: Callable | None) -> CatalogEntry:
    seq = open_dataset(plan.dataset_root, plan.layout).sequence(plan.subject)
    frames = [seq.frame(i) for i in plan.frame_indices]
    have = set(zip(table.column("frame_id").to_pylist(), table.column("camera").to_pylist()))
    failures = [{"key": f"{fr.subject}/{fr.frame_id}/{v.name}",
                 "error": "no target in the shard (the teacher's message was in the lost catalog entry)"}
                for fr in frames for v in fr.views if (fr.frame_id, v.name) not in have]
    consistency = None
    kinds = sorted(set(table.column("kind").to_pylist()))
    if consistency_fn and "keypoints" in kinds:
        rows = decode_rows(table.filter(pc.equal(table.column("kind"), "keypoints")))
        per_frame = []
        for fr in frames:
            by_cam = {r.camera: r.array for r in rows if r.frame_id == fr.frame_id}
            views = [v for v in fr.views if v.name in by_cam]
            if len(views) >= 2:
                per_frame.append((fr, [pinhole(v.camera) for v in views], np.stack([by_cam[v.name] for v in views]),
                                  [v.name for v in views]))
        consistency = consistency_fn(per_frame) if per_frame else None
    first = table.slice(0, 1).to_pylist()[0]
    return CatalogEntry(
        shard_key=plan.key, shard_path=rel, shard_sha256=hashlib.sha256(data).hexdigest(), shard_bytes=len(data),
        rows=table.num_rows, dataset_id=plan.dataset_id, dataset_root=plan.dataset_root, layout=plan.layout,
        subject=plan.subject, frame_ids=list(plan.frame_ids), kinds=kinds,
        inputs=[{"path": p, "sha256": s} for p, s in plan.inputs], teacher=plan.teacher,
        teacher_version=plan.teacher_version, weights_sha256=plan.weights_sha256, config_hash=plan.config_hash,
        config_json=plan.config_json, code_version=first["code_version"], flow_run_id=first["flow_run_id"],
        host=f"{host_name()} (entry restored from the shard)", created_at=first["created_at"], failures=failures,
        consistency_json=None if consistency is None else json.dumps(consistency))


def _remove_damaged(store: StorageRoot, damaged: list[DamagedEntry]) -> None:
    """Drop damaged catalog files of a key whose shard now has a good entry (the repair's last step)."""
    for d in damaged:
        try:
            store.delete(d.rel)
        except FileNotFoundError:
            pass


def _check_output(out: TeacherOutput, key: str, teacher: str) -> None:
    for name in ("heatmaps", "keypoints", "cse"):
        arr = getattr(out, name)
        if arr is None:
            continue
        values = arr if name != "keypoints" else arr[~out.missing] if out.missing is not None else arr
        if not np.all(np.isfinite(values)):
            raise NonFiniteError(f"{key}: teacher {teacher} produced NaN/Inf in its {name}; target rejected")
    if out.heatmaps is not None and (out.heatmaps.min() < 0 or out.heatmaps.max() > 1 + 1e-6):
        raise NonFiniteError(f"{key}: teacher {teacher} produced heatmap values outside [0, 1]")


def _rows_for(frame: MultiViewFrame, index: int, view, out: TeacherOutput, image_sha: str,
              mask_sha: str | None) -> list[TargetRow]:
    common = dict(subject=frame.subject, frame_index=index, frame_id=frame.frame_id, camera=view.name,
                  camera_index=view.index, stride=out.stride, image_sha256=image_sha, mask_sha256=mask_sha)
    rows = []
    if out.heatmaps is not None:
        rows.append(TargetRow(kind="heatmap", array=out.heatmaps.astype(np.float32),
                              joint_conf=out.keypoints[:, 2] if out.keypoints is not None else None,
                              joint_missing=out.missing, **common))
    if out.keypoints is not None:
        rows.append(TargetRow(kind="keypoints", array=out.keypoints.astype(np.float32), joint_conf=out.keypoints[:, 2],
                              joint_missing=out.missing, **{**common, "stride": 1}))
    if out.cse is not None:
        rows.append(TargetRow(kind="cse", array=out.cse, mask=out.cse_mask, **common))
    return rows


def run_shard(plan: ShardPlan, cfg: DistillConfig, teacher: Teacher, store: StorageRoot,
              flow_run_id: str | None = None, consistency_fn: Callable | None = None) -> ShardResult:
    """Produce one shard (or skip it when a verified copy exists). Bad views fail alone, with a message."""
    t0 = time.perf_counter()
    _, damaged = Catalog(store).scan(prefix=f"{plan.key}-")
    done, status = find_done(plan, store), "skipped"
    if done is None:
        done, status = restore_entry(plan, store, consistency_fn), "restored"
    if done is not None:
        _remove_damaged(store, damaged)
        return ShardResult(plan.key, plan.subject, plan.frame_ids, status, done.rows, list(done.failures),
                           done.shard_path, done.consistency, time.perf_counter() - t0)
    hold_point("shard")  # a no-op unless a kill test sets GHNERF_HOLD (ghnerf/base/hold.py)
    inputs = dict(plan.inputs)
    root = Path(plan.dataset_root)
    seq = open_dataset(root, plan.layout).sequence(plan.subject)
    rows: list[TargetRow] = []
    failures: list[dict] = []
    per_frame_keypoints = []
    views_run = views_detected = 0
    for index in plan.frame_indices:
        frame = seq.frame(index)
        batch, views = [], []
        for v in frame.views:
            key = f"{frame.subject}/{frame.frame_id}/{v.name}"
            try:
                vi = load_view(v)
                surface = load_surface(v)[0] if "surface" in teacher.needs else None
                batch.append(TeacherInput(key=key, image=np.round(vi.image * 255).astype(np.uint8),
                                          camera=vi.camera, mask=vi.mask, joints2d=v.joints2d, surface=surface))
                views.append(v)
            except GHNeRFError as exc:
                failures.append({"key": key, "error": str(exc)})
        outputs = teacher.predict(batch) if batch else []
        reporting = [o for o in outputs if "detected" in o.extras]
        views_run += len(reporting)
        views_detected += sum(bool(o.extras["detected"]) for o in reporting)
        cams, kpts = [], []
        for v, item, out in zip(views, batch, outputs):
            try:
                _check_output(out, item.key, teacher.name)
            except GHNeRFError as exc:
                failures.append({"key": item.key, "error": str(exc)})
                continue
            image_sha = inputs.get(str(v.image_path.relative_to(root)), "missing")
            mask_sha = inputs.get(str(v.mask_paths[0].relative_to(root))) if v.mask_paths else None
            rows.extend(_rows_for(frame, index, v, out, image_sha, mask_sha))
            if out.keypoints is not None:
                cams.append(item.camera)
                kpts.append(out.keypoints)
        if len(cams) >= 2:
            per_frame_keypoints.append((frame, cams, np.stack(kpts), [v.name for v in views]))
    consistency = consistency_fn(per_frame_keypoints) if consistency_fn and per_frame_keypoints else None
    if views_run:
        consistency = {**(consistency or {}), "teacher_views": views_run, "teacher_detected_views": views_detected}
    if not rows:
        return ShardResult(plan.key, plan.subject, plan.frame_ids, "failed", 0, failures, None, consistency,
                           time.perf_counter() - t0)
    created = now_utc()
    lineage = {"dataset_id": plan.dataset_id, "teacher": plan.teacher, "teacher_version": plan.teacher_version,
               "weights_sha256": plan.weights_sha256, "config_hash": plan.config_hash,
               "code_version": code_version(), "flow_run_id": flow_run_id, "created_at": created}
    table = build_table(rows, lineage)
    data = table_bytes(table)
    sha, nbytes = hashlib.sha256(data).hexdigest(), len(data)
    rel = shard_rel_path(plan.dataset_id, plan.teacher, plan.key, sha)
    store.write_bytes(rel, data)
    Catalog(store).add(CatalogEntry(
        shard_key=plan.key, shard_path=rel, shard_sha256=sha, shard_bytes=nbytes, rows=table.num_rows,
        dataset_id=plan.dataset_id, dataset_root=plan.dataset_root, layout=plan.layout, subject=plan.subject,
        frame_ids=list(plan.frame_ids), kinds=sorted({r.kind for r in rows}),
        inputs=[{"path": p, "sha256": s} for p, s in plan.inputs], teacher=plan.teacher,
        teacher_version=plan.teacher_version, weights_sha256=plan.weights_sha256, config_hash=plan.config_hash,
        config_json=plan.config_json, code_version=code_version(), flow_run_id=flow_run_id, host=host_name(),
        created_at=created, failures=failures,
        consistency_json=None if consistency is None else json.dumps(consistency)))
    _remove_damaged(store, damaged)
    return ShardResult(plan.key, plan.subject, plan.frame_ids, "partial" if failures else "written", table.num_rows,
                       failures, rel, consistency, time.perf_counter() - t0)


@dataclass
class DistillReport:
    dataset_id: str
    teacher: str
    results: list[ShardResult]
    skipped_subjects: list[dict] = field(default_factory=list)  # folders that look like subjects but are unreadable
    garbage: GcReport | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def warnings(self) -> list[str]:
        lines = [f"skipped subject {s['name']}: {s['path']}: {s['reason']}" for s in self.skipped_subjects]
        if self.garbage is not None:
            lines += [d.message() for d in self.garbage.damaged if self.teacher in d.teachers]
        return lines


def clean_shard_dirs(store: StorageRoot, plans: list[ShardPlan], min_age_s: float = GC_MIN_AGE_S) -> GcReport:
    """After a run: duplicate shard files of its dataset and teacher (runs raced, recomputed shards) and stale
    temporary files go; orphans of other keys and superseded versions stay (``ghnerf store gc`` removes those)."""
    report = GcReport()
    for under in sorted({p.shard_dir for p in plans}):
        part = collect_garbage(store, under, orphans=False, min_age_s=min_age_s)
        report.removed += part.removed
        report.kept_young += part.kept_young
        report.kept_damaged += part.kept_damaged
        report.damaged = part.damaged
    return report


def distill(dataset_root: str | Path, store_url: str | Path, cfg: DistillConfig, flow_run_id: str | None = None,
            storage_options: dict | None = None, on_shard: Callable[[ShardResult], None] | None = None,
            consistency_fn: Callable | None = None) -> DistillReport:
    """Run ``cfg.teacher`` over the dataset into ``store_url`` (no Prefect; the flow runs the same steps).

    The storage root is checked first (one line on missing credentials or endpoint), then the dataset is
    planned (every input hashed; subject folders that cannot be read are reported in ``skipped_subjects``),
    then each shard is produced or skipped, and finally duplicate shard files are removed.
    """
    teacher = cfg.build()
    store = StorageRoot(store_url, storage_options)
    store.check(write=True)
    skipped = open_dataset(dataset_root).skipped
    plans = plan_shards(dataset_root, cfg, teacher)
    results = []
    for plan in plans:
        res = run_shard(plan, cfg, teacher, store, flow_run_id, consistency_fn)
        results.append(res)
        if on_shard:
            on_shard(res)
    return DistillReport(plans[0].dataset_id if plans else "", cfg.teacher, results, skipped,
                         clean_shard_dirs(store, plans))
