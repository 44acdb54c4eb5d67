"""Distill overhead and heatmap storage size.

In one run, on the same synthetic frames and teacher:
  1. bare loop: read every view, run the teacher, keep nothing;
  2. `ghnerf.app.distill.distill` (what `ghnerf distill` runs, no Prefect);
  3. the Prefect `distill` flow (temporary local Prefect server started before timing);
and the stored bytes per heatmap target against raw float32, with the keypoint
error the storage adds. Goals (issue 4): flow / bare <= 1.10 on 200 frames; heatmap
bytes <= 1/30 of float32 with no loss of keypoint accuracy.

    .venv/bin/python benchmarks/distill_overhead.py [--teachers mediapipe,gt-joints] [--size 256]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.data import load_view, open_dataset
from ghnerf.synth.generate import SynthConfig, generate_dataset
from storage.catalog import now_utc
from storage.shards import TargetRow, build_table, decode_rows, table_bytes
from teachers.base import TeacherInput
from ghnerf.app.distill import DistillConfig, distill


def bare_loop(data: Path, cfg: DistillConfig) -> float:
    teacher = cfg.build()
    reader = open_dataset(data)
    t0 = time.perf_counter()
    for name in reader.subjects():
        seq = reader.sequence(name)
        for i in range(seq.num_frames):
            frame = seq.frame(i)
            batch = []
            for v in frame.views:
                vi = load_view(v)
                batch.append(TeacherInput(v.name, np.round(vi.image * 255).astype(np.uint8), vi.camera, vi.mask,
                                          v.joints2d))
            teacher.predict(batch)
    return time.perf_counter() - t0


def heatmap_storage(data: Path, cfg: DistillConfig) -> dict:
    """Bytes per stored heatmap target vs float32, and the keypoint error storage adds."""
    teacher = cfg.build()
    codec = HeatmapCodec(cfg.stride, cfg.sigma)
    seq = open_dataset(data).sequence(open_dataset(data).subjects()[0])
    rows, exact = [], []
    for i in range(min(seq.num_frames, 10)):
        for v in seq.frame(i).views:
            vi = load_view(v)
            out = teacher.predict([TeacherInput(v.name, np.round(vi.image * 255).astype(np.uint8), vi.camera,
                                                vi.mask, v.joints2d)])[0]
            rows.append(TargetRow(subject="s", frame_index=i, frame_id=i, camera=v.name, camera_index=v.index,
                                  kind="heatmap", array=out.heatmaps, stride=cfg.stride, image_sha256="x",
                                  joint_missing=out.missing))
            exact.append(codec.decode(out.heatmaps))
    lineage = {"dataset_id": "d", "teacher": teacher.name, "teacher_version": teacher.version,
               "weights_sha256": teacher.weights_digest, "config_hash": "c", "code_version": "bench",
               "flow_run_id": None, "created_at": now_utc()}
    table = build_table(rows, lineage)
    stored = len(table_bytes(table))
    raw = sum(r.array.astype(np.float32).nbytes for r in rows)
    back = decode_rows(table)
    err = []
    for e, b in zip(exact, back):
        d = codec.decode(b.array)
        ok = np.isfinite(e[:, 0]) & np.isfinite(d[:, 0])
        err.extend(np.linalg.norm(e[ok, :2] - d[ok, :2], axis=1))
    return {"targets": len(rows), "bytes_per_target": stored / len(rows), "raw_float32_bytes": raw / len(rows),
            "ratio": raw / stored, "keypoint_shift_px_max": float(np.max(err)) if err else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teachers", default="mediapipe,gt-joints")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames-per-shard", type=int, default=None, help="default: sized from --shard-mb (128 MB)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/distill_overhead.json"))
    args = ap.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from flows.distill import distill_flow

    frames = args.subjects * args.frames
    results = []
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        data = Path(tmp) / "data"
        generate_dataset(SynthConfig(layout="zju", subjects=args.subjects, frames=args.frames, cameras=args.cameras,
                                     size=args.size), data)
        for name in args.teachers.split(","):
            cfg = DistillConfig(teacher=name, frames_per_shard=args.frames_per_shard)
            bare_loop(data, cfg)  # warm-up: imports, model load, file cache
            t_bare = bare_loop(data, cfg)
            t0 = time.perf_counter()
            rep = distill(data, Path(tmp) / f"plain-{name}", cfg)
            t_plain = time.perf_counter() - t0
            t0 = time.perf_counter()
            distill_flow(dataset=str(data), teacher=name, out=str(Path(tmp) / f"flow-{name}"),
                         frames_per_shard=args.frames_per_shard)
            t_flow = time.perf_counter() - t0
            storage = heatmap_storage(data, cfg)
            results.append({"teacher": name, "frames": frames, "views": frames * args.cameras,
                            "shards": len(rep.results), "bare_s": round(t_bare, 2), "distill_s": round(t_plain, 2),
                            "flow_s": round(t_flow, 2), "distill_over_bare": round(t_plain / t_bare, 3),
                            "flow_over_bare": round(t_flow / t_bare, 3), "heatmap_storage": storage})
    table = Table(title=f"distill overhead: {frames} frames x {args.cameras} views @ {args.size}^2")
    for col in ("teacher", "shards", "bare loop s", "distill s", "Prefect flow s", "distill / bare",
                "flow / bare (goal <= 1.10)", "heatmap raw / stored (goal >= 30)", "keypoint shift px"):
        table.add_column(col)
    for r in results:
        st = r["heatmap_storage"]
        table.add_row(r["teacher"], str(r["shards"]), str(r["bare_s"]), str(r["distill_s"]), str(r["flow_s"]),
                      str(r["distill_over_bare"]), str(r["flow_over_bare"]), f"{st['ratio']:.1f}",
                      f"{st['keypoint_shift_px_max']:.4f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "distill_overhead", "size": args.size, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
