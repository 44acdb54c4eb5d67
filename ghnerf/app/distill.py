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

from ghnerf.app.distill_config import DistillConfig
from ghnerf.app.shard_planning import ShardPlan, plan_shards
from ghnerf.base.errors import GHNeRFError, NonFiniteError
from ghnerf.base.hold import hold_point
from ghnerf.base.kinds import TargetKind
from ghnerf.data import load_surface, load_view, open_dataset
from ghnerf.data.images import pinhole
from ghnerf.data.records import MultiViewFrame
from storage.catalog import (
    Catalog,
    CatalogEntry,
    DamagedEntry,
    code_version,
    host_name,
    now_utc,
)
from storage.codec import ENCODING_OF_KIND
from storage.errors import ShardIntegrityError
from storage.gc import GC_MIN_AGE_S, GcReport, collect_garbage
from storage.root import StorageRoot
from storage.schemas import TARGET_SCHEMA
from storage.shards import (
    TargetRow,
    build_table,
    decode_rows,
    named_sha_matches,
    read_shard,
    shard_rel_path,
    table_bytes,
)

from storage.shards import target_id
from teachers.base import Teacher, TeacherInput, TeacherOutput


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
        if shard_disagreement(plan, table) is not None:
            continue  # its rows do not match the inputs it claims: recomputed instead
        entry = _entry_from_shard(plan, rel, data, table, consistency_fn)
        Catalog(store).add(entry)
        return entry
    return None


def view_hashes(view, inputs: dict[str, str], root: Path) -> tuple[str, str | None]:
    """(image sha256, first mask's sha256 or None) of a view, from a plan's ``inputs``."""
    mask = inputs.get(str(view.mask_paths[0].relative_to(root))) if view.mask_paths else None
    return inputs.get(str(view.image_path.relative_to(root)), "missing"), mask


def shard_disagreement(plan: ShardPlan, table: pa.Table) -> str | None:
    """Why the rows of a shard found without a catalog entry are not what the plan would produce, or None.

    Each row must name a view of the plan with that view's image and mask sha256 as the plan hashed them now,
    carry the target id those fields give, use the codec and stride of its kind, and decode to finite values
    (heatmaps in [0, 1]). A shard that was altered and renamed after its new sha256 fails here.
    """
    seq = open_dataset(plan.dataset_root, plan.layout).sequence(plan.subject)
    inputs, root = dict(plan.inputs), Path(plan.dataset_root)
    views = {}
    for i in plan.frame_indices:
        fr = seq.frame(i)
        for v in fr.views:
            views[(fr.frame_id, v.name)] = view_hashes(v, inputs, root)
    stride = json.loads(plan.config_json).get("stride")
    for row in table.to_pylist():
        where = f"{row['subject']}/{row['frame_id']}/{row['camera']} {row['kind']}"
        if (row["frame_id"], row["camera"]) not in views:
            return f"{where}: not a view of the plan"
        if (row["image_sha256"], row["mask_sha256"]) != views[(row["frame_id"], row["camera"])]:
            return f"{where}: made from other image or mask files than the dataset's"
        ident = TargetRow(subject=row["subject"], frame_index=0, frame_id=row["frame_id"], camera=row["camera"],
                          camera_index=0, kind=row["kind"], array=np.empty(0), stride=0, image_sha256="")
        if row["target_id"] != target_id(plan.dataset_id, ident, plan.teacher, plan.config_hash):
            return f"{where}: its target id does not match its fields"
        if row["encoding"] != ENCODING_OF_KIND.get(row["kind"]) or row["stride"] != (
                1 if row["kind"] == "keypoints" else stride):
            return f"{where}: encoding {row['encoding']} / stride {row['stride']} is not what distill writes"
    try:
        rows = decode_rows(table)
    except (ValueError, TypeError) as exc:
        return f"its targets do not decode ({exc})"
    for r in rows:
        values = r.array if r.kind != "keypoints" or r.joint_missing is None else r.array[~r.joint_missing]
        if not np.all(np.isfinite(values)) or (r.kind == "heatmap" and (r.array.min() < 0 or r.array.max() > 1 + 1e-3)):
            return f"{r.subject}/{r.frame_id}/{r.camera} {r.kind}: values that distill never writes"
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
    if consistency_fn and TargetKind.KEYPOINTS in kinds:
        rows = decode_rows(table.filter(pc.equal(table.column("kind"), TargetKind.KEYPOINTS.value)))
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
        inputs=plan.input_records(), teacher=plan.teacher,
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
        rows.append(TargetRow(kind=TargetKind.HEATMAP, array=out.heatmaps.astype(np.float32),
                              joint_conf=out.keypoints[:, 2] if out.keypoints is not None else None,
                              joint_missing=out.missing, **common))
    if out.keypoints is not None:
        rows.append(TargetRow(kind=TargetKind.KEYPOINTS, array=out.keypoints.astype(np.float32),
                              joint_conf=out.keypoints[:, 2],
                              joint_missing=out.missing, **{**common, "stride": 1}))
    if out.cse is not None:
        rows.append(TargetRow(kind=TargetKind.CSE, array=out.cse, mask=out.cse_mask, **common))
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
                batch.append(TeacherInput(key=key, image=vi.photo,
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
            image_sha, mask_sha = view_hashes(v, inputs, root)
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
        inputs=plan.input_records(), teacher=plan.teacher,
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
    dataset_notes: list[str] = field(default_factory=list)  # e.g. image files on disk no annotation lists

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def warnings(self) -> list[str]:
        lines = [f"skipped subject {s['name']}: {s['path']}: {s['reason']}" for s in self.skipped_subjects]
        lines += self.dataset_notes
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
    reader = open_dataset(dataset_root)
    plans = plan_shards(dataset_root, cfg, teacher)
    notes = reader.sequence_warnings(cfg.subjects or reader.subjects())
    results = []
    for plan in plans:
        res = run_shard(plan, cfg, teacher, store, flow_run_id, consistency_fn)
        results.append(res)
        if on_shard:
            on_shard(res)
    return DistillReport(plans[0].dataset_id if plans else "", cfg.teacher, results, reader.skipped,
                         clean_shard_dirs(store, plans), notes)
