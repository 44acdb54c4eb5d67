"""A teacher-free student's own 2D pose network on the held-out subjects: PCK@0.2 of its source heatmap head's
keypoints on every camera of the test frames, one view at a time, beside its teacher's (MediaPipe's stored
keypoints) on the same views, with the share of joints each reports and the median pixel error on the joints all
of them have within PCK's radius (how precise the hits are); then each network's keypoints of each held-out
view's K source views triangulated (robust, and lifted: :mod:`ghnerf.eval.triangulated_teacher`) and projected
into it, as the student benchmark scores its rival. The student network's keypoints, so triangulated, are the
teacher-free student's joint hypotheses; triangulated together with the teacher's keypoints of the same views
(" + teacher": each an observation of its own, ``StudentConfig.hypothesis_teacher``), those of the student that
runs both networks. MPJPE of each triangulation (metres, against the dataset's 3D joints) is in the JSON.

Reads ``benchmarks/student_quality.py --workdir W`` runs (their ``checkpoints/latest.pt``); nothing is trained.
Prints a table and writes JSON.

    .venv/bin/python benchmarks/source_pose_pck.py --workdir W --runs RUN [RUN ...] [--source-views 2 3] [--out F]
"""

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ghnerf.base.fileio import write_json
from ghnerf.data.images import pinhole
from ghnerf.data.open import open_dataset
from ghnerf.eval.evaluate import load_run_model
from ghnerf.eval.metrics import paired_pck_difference, pck_hits
from ghnerf.eval.triangulated_teacher import held_out_teacher, teacher_keypoints
from ghnerf.student.data import ExampleSet, source_batch
from ghnerf.student.joint_hypotheses import source_keypoints
from storage.targets import TargetStore


# key suffix -> column label: each network's keypoints triangulated alone, and together with the teacher's
VARIANTS = {"": "", "_pooled": " + teacher"}


class KeypointTable:
    """Keypoints by (subject, frame_id, camera name), read as a :class:`storage.targets.TargetStore`'s are."""

    def __init__(self, keypoints: dict):
        self._keypoints = keypoints

    def keypoints(self, subject: str, frame_id: int, camera: str) -> np.ndarray:
        return self._keypoints[subject, frame_id, camera]


def test_examples(workdir: Path, source_views: int) -> ExampleSet:
    return ExampleSet(workdir / "data", "test", source_views, 1.0, "none")


def held_out_views(workdir: Path) -> list[tuple[str, int, int]]:
    """(subject, frame index, camera index) of every camera of every frame of the test subjects."""
    examples = test_examples(workdir, 2)
    return sorted({(s, f, c) for s, f, _ in examples.items
                   for c in range(len(examples.reader.sequence(s).frame(f).views))})


@torch.no_grad()
def own_keypoints(run: Path, reader, views) -> tuple[np.ndarray, float]:
    """(N, 25, 3) the run's source heatmap head's keypoints of each view (full-resolution pixels), its image scale."""
    model, meta = load_run_model(run / "checkpoints" / "latest.pt", torch.device("cpu"))
    if model.source_heatmap_head is None:
        raise SystemExit(f"{run} has no source heatmap head (a teacher-free preset has one)")
    scale = float(meta["train_config"].image_scale)
    out = []
    for subject, f, cam in views:
        frame = reader.sequence(subject).frame(f)
        batch = source_batch(frame, [cam], scale, pinhole(frame.views[cam].camera))
        kp = source_keypoints(model.source_heatmaps(model.project_human(batch.src_images)))[0]
        kp[:, :2] /= scale
        out.append(kp)
    return np.stack(out), scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="a student_quality.py --workdir")
    ap.add_argument("--runs", nargs="+", required=True, help="run folders in it (teacher-free rows)")
    ap.add_argument("--source-views", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/source_pose_pck.json"))
    args = ap.parse_args()
    views = held_out_views(args.workdir)
    reader = open_dataset(args.workdir / "data")
    store = TargetStore(args.workdir / "targets", "mediapipe")
    frames = {(s, f): reader.sequence(s).frame(f) for s, f, _ in views}
    gt = np.stack([frames[s, f].views[c].joints2d for s, f, c in views])
    teacher = np.stack([teacher_keypoints(store, s, frames[s, f].frame_id, frames[s, f].views[c].name)
                        for s, f, c in views])
    teacher_hits, valid, _ = pck_hits(teacher, gt)
    names = [(s, frames[s, f].frame_id, frames[s, f].views[c].name) for s, f, c in views]
    networks = {"mediapipe (the teacher)": teacher}
    scales = {}
    for run in args.runs:
        networks[run], scales[run] = own_keypoints(args.workdir / run, reader, views)
    table = Table(title=f"PCK@0.2 on the test subjects' views: one view at a time ({len(views)} views), and "
                        f"triangulated from K source views into each held-out one")
    for column in ("network", "one view", "- teacher (95 % paired interval)", "detected", "px error, all hit",
                   *(f"{m}{label}, K = {k}" for k in args.source_views for label in VARIANTS.values()
                     for m in ("robust", "lifted"))):
        table.add_column(column)
    hits_of = {name: pck_hits(kps, gt)[0] for name, kps in networks.items()}
    all_hit = valid & np.logical_and.reduce(list(hits_of.values()))
    examples = {k: test_examples(args.workdir, k) for k in args.source_views}
    results = {"views": len(views), "joints": int(valid.sum()), "joints_all_hit": int(all_hit.sum()), "networks": {}}
    for name, kps in networks.items():
        hits = hits_of[name]
        error = np.linalg.norm(kps[..., :2] - gt[..., :2], axis=-1)
        # detected: share of the evaluated joints the network reports; px error: median distance to the true
        # joint (full-resolution pixels) over the joints every network has within PCK's radius (precision)
        row = {"one_view": float(hits[valid].mean()), "detected": float((kps[..., 2] > 0)[valid].mean()),
               "median_px_error_all_hit": float(np.median(error[all_hit]))}
        if name in scales:
            diff = paired_pck_difference((hits & valid).sum(1), (teacher_hits & valid).sum(1), valid.sum(1))
            row |= {"minus_teacher": dataclasses.asdict(diff), "image_scale": scales[name]}
        own = KeypointTable(dict(zip(names, kps)))
        for k in args.source_views:
            for suffix in VARIANTS:
                pooled = store if suffix else None
                if pooled is not None and name not in scales:
                    continue  # the teacher pooled with itself: nothing new
                held = held_out_teacher(examples[k], own, methods=("robust", "lifted"), pooled_with=pooled)
                for m in ("robust", "lifted"):
                    h, v, _ = pck_hits(held.triangulated[m], held.gt2d)
                    row[f"{m}{suffix}_K{k}"] = float(h[v].mean())
                    row[f"{m}{suffix}_K{k}_mpjpe_m"] = held.mpjpe(m)
        results["networks"][name] = row
        d = row.get("minus_teacher")
        table.add_row(name, f"{row['one_view']:.3f}",
                      "–" if d is None else f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]",
                      f"{row['detected']:.3f}", f"{row['median_px_error_all_hit']:.2f}",
                      *(f"{row[f'{m}{p}_K{k}']:.3f}" if f"{m}{p}_K{k}" in row else "–"
                        for k in args.source_views for p in VARIANTS for m in ("robust", "lifted")))
    Console(width=160).print(table)
    write_json(args.out, {"benchmark": "source_pose_pck", **results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
