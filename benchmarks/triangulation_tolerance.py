"""The triangulated-teacher rival's outlier tolerance: PCK of the teacher's keypoints of each held-out view's K
source views, triangulated robustly at each tolerance (and with the missing joints lifted), on the student
benchmark's held-out views; the evidence for ``ghnerf.base.tolerances.FEW_VIEWS_REL_THRESHOLD``.

Reads the data and the MediaPipe shards a ``benchmarks/student_quality.py --workdir W`` run keeps (nothing is
trained). Prints a table and writes JSON.

    .venv/bin/python benchmarks/triangulation_tolerance.py --workdir W [--tolerances 0.05 0.1 0.15 0.2]
"""

import argparse
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ghnerf.base.fileio import write_json
from ghnerf.base.joint_lifting import lift_missing_joints
from ghnerf.base.multiview import consistency_report
from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD
from ghnerf.eval.metrics import pck, pck_hits
from ghnerf.eval.triangulated_teacher import held_out_teacher
from ghnerf.student.data import ExampleSet
from storage.targets import TargetStore


def robust(tolerance: float, cameras, keypoints):
    return consistency_report(cameras, keypoints, rel_threshold=tolerance).joints3d


def lifted(tolerance: float, cameras, keypoints):
    return lift_missing_joints(cameras, keypoints, robust(tolerance, cameras, keypoints))


def oracle_per_joint(predictions: list, gts) -> float:
    """PCK when each joint takes whichever of ``predictions`` (one (N, 25, 3) array per tolerance) scores it best
    on these views: an upper bound for per-joint tolerances chosen on other data."""
    hits = [pck_hits(p, gts) for p in predictions]
    valid = hits[0][1]
    per_joint = np.stack([(correct & valid).sum(0) for correct, _, _ in hits])  # (T, 25) hits
    return float(per_joint.max(0).sum() / max(valid.sum(), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, required=True, help="a student_quality.py --workdir (data, targets)")
    ap.add_argument("--tolerances", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2])
    ap.add_argument("--source-views", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/triangulation_tolerance.json"))
    args = ap.parse_args()
    store = TargetStore(args.workdir / "targets", "mediapipe")
    methods = {f"{kind} {t}": partial(fn, t) for t in args.tolerances for kind, fn in (("robust", robust),
                                                                                         ("lifted", lifted))}
    results = {}
    for k in args.source_views:
        held = held_out_teacher(ExampleSet(args.workdir / "data", "test", k, 1.0, "none"), store, methods=methods)
        results[k] = {m: pck(held.triangulated[m], held.gt2d).value for m in methods}
        for kind in ("robust", "lifted"):  # each joint at the tolerance best for it on these very views
            results[k][f"{kind} oracle"] = oracle_per_joint([held.triangulated[f"{kind} {t}"] for t in args.tolerances],
                                                            held.gt2d)
        views = len(held.keys)
    table = Table(title=f"robust triangulation of MediaPipe's source-view keypoints, PCK@0.2 on {views} held-out "
                        f"views (FEW_VIEWS_REL_THRESHOLD = {FEW_VIEWS_REL_THRESHOLD})")
    table.add_column("tolerance (share of the keypoint box diagonal)")
    for k in args.source_views:
        table.add_column(f"robust, K = {k}")
    for k in args.source_views:
        table.add_column(f"lifted, K = {k}")
    for t in [*args.tolerances, "oracle"]:
        table.add_row("per joint, the best on these views (an oracle)" if t == "oracle" else f"{t:g}",
                      *(f"{results[k][f'robust {t}']:.4f}" for k in args.source_views),
                      *(f"{results[k][f'lifted {t}']:.4f}" for k in args.source_views))
    Console(width=200).print(table)
    write_json(args.out, {"benchmark": "triangulation_tolerance", "views": views, "tolerances": args.tolerances,
                          "current": FEW_VIEWS_REL_THRESHOLD, "pck": {str(k): v for k, v in results.items()}})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
