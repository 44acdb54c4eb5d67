"""Where a student of the student benchmark misses: its held-out joints split by how many of the view's K source
views have the teacher right on that joint (within PCK's radius in the source view's own pixels), with the lifted
triangulated teacher's hit rate in the same split.

Reads a ``benchmarks/student_quality.py --workdir W`` folder: the data, the MediaPipe shards and a kept run's
evaluations (its ``eval_test_K/metrics.json`` keypoints); nothing is trained or rendered. Prints a table and writes
JSON.

    .venv/bin/python benchmarks/student_misses.py --workdir W --run ghnerf-mediapipe-mediapipe-fused-22-bfloat16 \
        [--source-views 2 3]
"""

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ghnerf.base.fileio import write_json
from ghnerf.eval.metrics import pck_hits
from ghnerf.eval.triangulated_teacher import held_out_teacher, teacher_keypoints
from ghnerf.student.data import ExampleSet
from storage.targets import TargetStore


def sources_right(examples: ExampleSet, store: TargetStore) -> np.ndarray:
    """(N, 25) per held-out view and joint: how many of its source views have the teacher's keypoint right."""
    items = examples.items
    right = np.zeros((len(items), 25), dtype=int)
    for index, (subject, f, _) in enumerate(items):
        frame = examples.reader.sequence(subject).frame(f)
        views = [frame.views[v] for v in examples.sources(index)]
        kps = np.stack([teacher_keypoints(store, subject, frame.frame_id, v.name) for v in views])
        gts = np.stack([v.joints2d for v in views])
        correct, valid, _ = pck_hits(kps, gts)
        right[index] = (correct & valid).sum(0)
    return right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="a student_quality.py --workdir")
    ap.add_argument("--run", required=True, help="a run folder in it (its evaluations are read)")
    ap.add_argument("--source-views", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/student_misses.json"))
    args = ap.parse_args()
    store = TargetStore(args.workdir / "targets", "mediapipe")
    console, results = Console(width=160), {}
    for k in args.source_views:
        examples = ExampleSet(args.workdir / "data", "test", k, 1.0, "none")
        report = json.loads((args.workdir / args.run / f"eval_test_{k}" / "metrics.json").read_text())
        student = np.array([v["keypoints"] for v in report["per_view"]], dtype=float)
        held = held_out_teacher(examples, store, len(student), methods=("lifted",))
        if len(student) != len(held.keys):
            raise SystemExit(f"{args.run}'s evaluation with {k} source views has {len(student)} views, the data "
                             f"{len(held.keys)}: evaluate it again with benchmarks/student_quality.py")
        right = sources_right(examples, store)[:len(student)]
        hits = {name: pck_hits(kps, held.gt2d) for name, kps in (("student", student),
                                                                 ("lifted", held.triangulated["lifted"]))}
        valid = hits["student"][1]
        table = Table(title=f"{args.run}, K = {k}: hit rate by source views with the teacher right")
        for column in ("source views right", "joints", "student", "lifted triangulation"):
            table.add_column(column)
        rows = []
        for n in range(k + 1):
            chosen = valid & (right == n)
            rate = {name: float(h[0][chosen].mean()) if chosen.any() else None for name, h in hits.items()}
            rows.append({"right": n, "joints": int(chosen.sum()), **rate})
            table.add_row(str(n), str(int(chosen.sum())),
                          *("–" if rate[m] is None else f"{rate[m]:.3f}" for m in ("student", "lifted")))
        console.print(table)
        results[str(k)] = rows
    write_json(args.out, {"benchmark": "student_misses", "run": args.run, "by_sources_right": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
