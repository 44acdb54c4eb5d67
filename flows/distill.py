"""Prefect flow ``distill``: one task per shard over the plain functions of :mod:`ghnerf.app.distill`.

Never one task per frame (thousands of tasks lock the SQLite backend). Skipping
already-written shards is done by the shard key against the catalog inside
:func:`ghnerf.app.distill.run_shard` (the key is the cache key: input content
hashes + teacher id + weights digest + config hash), not by Prefect's result
cache, so a deleted or corrupted shard is recomputed rather than "cached".
Retries cover transient I/O only. Tasks are tagged ``teacher-<name>`` so a
Prefect concurrency limit on that tag bounds each teacher. Shards run in threads,
one per core: teachers that release the GIL (MediaPipe, torch) overlap, and
Python-heavy ones do not thrash (measured in benchmarks/distill_overhead.py).
"""

import base64
import os
import resource
import socket
import threading

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.params import parameters_of
from ghnerf.app.distill import ShardResult, clean_shard_dirs, run_shard
from ghnerf.app.distill_config import DistillConfig, DistillSpec
from ghnerf.app.shard_planning import ShardPlan, plan_shards
from ghnerf.base.fileio import write_image
from ghnerf.data import open_dataset
from storage.catalog import Catalog
from storage.root import StorageRoot
from teachers.consistency import shard_consistency

_local = threading.local()


def _teacher(cfg: DistillConfig):
    """One teacher instance per worker thread (MediaPipe graphs are not thread-safe)."""
    cache = getattr(_local, "teachers", None)
    if cache is None:
        cache = _local.teachers = {}
    key = cfg.model_dump_json()
    if key not in cache:
        cache[key] = cfg.build()
    return cache[key]


def is_transient(task, task_run, state) -> bool:
    """Retry only I/O hiccups (network storage, busy files), never data, schema or config errors."""
    try:
        state.result()
    except (ConnectionError, TimeoutError, BlockingIOError):
        return True
    except OSError as exc:
        return exc.errno in (11, 16, 110, 111, 104)  # EAGAIN, EBUSY, ETIMEDOUT, ECONNREFUSED, ECONNRESET
    except Exception:  # noqa: BLE001
        return False
    return False


@task(name="plan-shards", cache_policy=NO_CACHE)
def plan_task(dataset: str, cfg: DistillConfig) -> list[ShardPlan]:
    return plan_shards(dataset, cfg, _teacher(cfg))


@task(name="run-shard", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=is_transient,
      cache_policy=NO_CACHE, task_run_name="shard-{plan.subject}-{plan.frame_ids[0]}")
def run_shard_task(plan: ShardPlan, cfg: DistillConfig, out: str, storage_options: dict | None = None) -> ShardResult:
    result = run_shard(plan, cfg, _teacher(cfg), StorageRoot(out, storage_options), flow_run.get_id(),
                       shard_consistency)
    result.worker = f"{socket.gethostname()}:{os.getpid()}"
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return result


def _preview_markdown(out: str, results: list[ShardResult], storage_options: dict | None) -> str | None:
    import cv2

    from ghnerf.app.teacher_preview import shard_preview

    store = StorageRoot(out, storage_options)
    new = [r for r in results if r.shard_path]
    if not new:
        return None
    entry = Catalog(store).find(new[0].key)[-1]
    sheet = shard_preview(store, entry)
    if store.is_local:
        write_image(store.full(f"previews/{entry.teacher}/{entry.shard_key}.png"), sheet)
    ok, png = cv2.imencode(".png", sheet[..., ::-1])
    return (f"### {entry.teacher} on {entry.subject}, frame {entry.frame_ids[0]}\n\n"
            f"![teacher preview](data:image/png;base64,{base64.b64encode(png.tobytes()).decode()})\n")


def ensure_teacher_limit(teacher: str, limit: int) -> None:
    """Create (or reset) the tag concurrency limit ``teacher-<name>`` on the Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=f"teacher-{teacher}", concurrency_limit=limit)


@flow(name="distill", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2))
@parameters_of(DistillSpec)
def distill_flow(**params) -> dict:
    """Distill ``teacher`` over ``dataset`` into the storage root ``out`` (parameters: the fields of
    :class:`~ghnerf.app.distill_config.DistillSpec`, as ``ghnerf distill --help``; ``teacher_concurrency``, if set, caps
    the shards of this teacher running at once across all flow runs with a Prefect tag concurrency limit on
    ``teacher-<name>``, created or reset here).

    Returns:
        counts of shards per status.
    """
    spec = DistillSpec(**params)
    teacher, out, storage_options, dataset = spec.teacher, spec.out, spec.storage_options, spec.dataset
    log = get_run_logger()
    if spec.teacher_concurrency:
        ensure_teacher_limit(teacher, spec.teacher_concurrency)
    cfg = spec.config()
    StorageRoot(out, storage_options).check(write=True)
    reader = open_dataset(dataset)
    for line in reader.warnings() + reader.sequence_warnings(reader.subjects()):  # e.g. images no annots.npy lists
        log.warning(line)
    plans = plan_task(dataset, cfg)
    log.info("%d shards planned for teacher %s", len(plans), teacher)
    runner = run_shard_task.with_options(tags=[f"teacher-{teacher}"])
    futures = [runner.submit(p, cfg, out, storage_options) for p in plans]
    results: list[ShardResult] = [f.result() for f in futures]
    garbage = clean_shard_dirs(StorageRoot(out, storage_options), plans)
    if garbage.removed:
        log.info("removed %d duplicate shard file(s): %s", len(garbage.removed),
                 ", ".join(g["path"] for g in garbage.removed))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    create_table_artifact(
        key=f"distill-{teacher}", description=f"shards of {teacher}: {counts}",
        table=[{"subject": r.subject, "frames": f"{r.frame_ids[0]}-{r.frame_ids[-1]}", "status": r.status,
                "rows": r.rows, "failed_views": len(r.failures),
                "failures": "; ".join(f"{f['key']}: {f['error']}" for f in r.failures)[:500],
                "reprojection_px_median": (r.consistency or {}).get("median_error_px"),
                "outlier_views": (r.consistency or {}).get("outlier_views"), "worker": r.worker,
                "worker_peak_rss_mb": round(r.peak_rss_mb, 1),
                "seconds": round(r.seconds, 2), "shard": r.shard_path}
               for r in results])
    md = _preview_markdown(out, results, storage_options)
    if md:
        create_markdown_artifact(key=f"distill-{teacher}-preview", markdown=md,
                                 description="teacher heatmaps and skeleton over the first new shard's frame")
    return counts


def dask_task_runner():
    """A DaskTaskRunner: the cluster at ``GHNERF_DASK_ADDRESS`` if set, else a LocalCluster of
    ``GHNERF_DASK_WORKERS`` (default 2) single-threaded worker processes (see docs/scaling.md)."""
    from prefect_dask import DaskTaskRunner

    address = os.environ.get("GHNERF_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    workers = int(os.environ.get("GHNERF_DASK_WORKERS", "2"))
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


# The same flow with its shards fanned out over Dask worker processes (deployment distill/renderpeople-dask).
distill_dask_flow = distill_flow.with_options(task_runner=dask_task_runner())
