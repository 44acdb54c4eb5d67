"""Distill at scale: 2,000 synthetic frames through the Prefect deployment with the Dask runner vs the bare loop.

In one run, on the same frames and teacher:
  1. bare loop in a fresh process: read every view and run the teacher, keep nothing (one process, one core);
  2. the deployment ``distill/renderpeople-dask`` run by a process worker against a local Prefect server
     (started here on a free loopback port), its shards fanned out over a Dask LocalCluster of
     ``--dask-workers`` single-threaded processes, writing verified shards and the catalog.
Reports frames/s of both, their ratio, and the peak resident memory of each Dask worker process
(read back from the run's shard table artifact) and of the bare loop.

    .venv/bin/python benchmarks/distill_scale.py [--frames 2000] [--teacher mediapipe] [--size 96]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BARE = """
import json, resource, sys, time
sys.path.insert(0, {bench!r})
from distill_overhead import bare_loop
from ghnerf.app.distill import DistillConfig
cfg = DistillConfig(teacher={teacher!r}, frames_per_shard={fps})
seconds = bare_loop({data!r}, cfg)
print(json.dumps({{"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=2000, help="total frames (split over --subjects)")
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--teacher", default="mediapipe")
    ap.add_argument("--frames-per-shard", type=int, default=50)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/distill_scale.json"))
    args = ap.parse_args()

    from flows.runs import artifacts_of, run_and_wait
    from flows.stack import (api_settings, deploy_all, ensure_pools, free_port, start_server, start_worker,
                             stop_process, wait_for_workers)
    from ghnerf.synth.generate import SynthConfig, generate_dataset
    from storage.catalog import Catalog
    from storage.root import StorageRoot

    console = Console()
    per_subject = args.frames // args.subjects
    frames = per_subject * args.subjects
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        t0 = time.perf_counter()
        generate_dataset(SynthConfig(layout="renderpeople", subjects=args.subjects, frames=per_subject,
                                     cameras=args.cameras, size=args.size), data)
        console.print(f"generated {frames} frames x {args.cameras} views in {time.perf_counter() - t0:.0f} s")
        code = BARE.format(bench=str(Path(__file__).resolve().parent), teacher=args.teacher,
                           fps=args.frames_per_shard, data=str(data))
        bare = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout.strip().splitlines()[-1])
        console.print(f"bare loop: {bare['seconds']:.1f} s")

        api = f"http://127.0.0.1:{free_port()}/api"
        server = start_server(api, tmp / "prefect", tmp / "server.log")
        worker = None
        try:
            with api_settings(api):
                ensure_pools(api)
                deploy_all(api, tmp / "deploy.log")
                os.environ["GHNERF_DASK_WORKERS"] = str(args.dask_workers)  # inherited by the worker's runs
                worker = start_worker(api, "cpu", tmp / "worker.log")
                wait_for_workers(api, ["cpu"])
                store = tmp / "targets"
                run = run_and_wait("distill/renderpeople-dask", {"dataset": str(data), "teacher": args.teacher,
                                                                 "out": str(store),
                                                                 "frames_per_shard": args.frames_per_shard},
                                   timeout_s=3600)
                assert run.state.is_completed(), run.state.message
                flow_s = (run.end_time - run.start_time).total_seconds()
                rows = next(a for a in artifacts_of(run.id) if a.key == f"distill-{args.teacher}").data
                rows = json.loads(rows) if isinstance(rows, str) else rows
        finally:
            if worker:
                stop_process(worker)
            stop_process(server)
        entries = Catalog(StorageRoot(store)).current()
        assert len(entries) == len(rows) and all(e.flow_run_id == str(run.id) for e in entries)
        peaks: dict[str, float] = {}
        for r in rows:
            peaks[r["worker"]] = max(peaks.get(r["worker"], 0.0), float(r["worker_peak_rss_mb"]))
    result = {"benchmark": "distill_scale", "teacher": args.teacher, "frames": frames, "views": frames * args.cameras,
              "size": args.size, "shards": len(rows), "dask_workers": args.dask_workers,
              "bare_s": round(bare["seconds"], 2), "bare_frames_per_s": round(frames / bare["seconds"], 2),
              "bare_peak_rss_mb": round(bare["peak_rss_mb"], 1),
              "deployment_s": round(flow_s, 2), "deployment_frames_per_s": round(frames / flow_s, 2),
              "deployment_over_bare_throughput": round(bare["seconds"] / flow_s, 3),
              "dask_worker_peak_rss_mb": {k: round(v, 1) for k, v in sorted(peaks.items())},
              "cpu_count": os.cpu_count()}
    table = Table(title=f"distill {frames} frames x {args.cameras} views @ {args.size}^2, teacher {args.teacher}, "
                        f"{os.cpu_count()} cores")
    for col in ("path", "seconds", "frames/s", "throughput vs bare", "peak RSS per process (MB)"):
        table.add_column(col)
    table.add_row("bare loop (1 process)", str(result["bare_s"]), str(result["bare_frames_per_s"]), "1.00",
                  str(result["bare_peak_rss_mb"]))
    table.add_row(f"deployment + Dask ({args.dask_workers} workers)", str(result["deployment_s"]),
                  str(result["deployment_frames_per_s"]), f"{result['deployment_over_bare_throughput']:.2f}",
                  ", ".join(str(v) for v in result["dask_worker_peak_rss_mb"].values()))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
