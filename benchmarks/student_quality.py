"""Student quality on held-out synthetic subjects, in the paper's table format (one run, same budget).

Trains, with the same number of steps, rays and learning rate, on the synthetic ZJU-layout
set: ``enerf`` (image quality reference), ``enerf-heatmap`` (the paper's baseline),
``ghnerf-resnet18`` on the dataset's own 2D joints, and ``ghnerf-resnet18`` distilled from
the ``mediapipe`` teacher's shards, once on the teacher's own heatmaps and once on its
keypoints fused over each frame's views (:mod:`ghnerf.target_fusion`), and ``ghnerf-mediapipe``
(the frozen teacher network as human encoder, reading each ray's multi-view joint evidence,
:mod:`ghnerf.student.ray_evidence`; once without that evidence, once with the triangulated joint hypotheses
as well, :mod:`ghnerf.student.joint_hypotheses`, and with those added after compositing,
``StudentConfig.heatmap_residual``) on the fused keypoints;
evaluates all on the held-out subjects, and puts the teacher's own PCK on the same views
next to the students' (its keypoints on the real, unmasked images, read back from its
shards), with each distilled student's paired difference to the teacher and its 95 %
bootstrap interval over views. Next to them, for each K, the triangulated teacher: the
teacher's keypoints of the same K source views the student gets, triangulated (plain
confidence-weighted DLT, and the robust :mod:`ghnerf.base.multiview` triangulation) and projected
into each held-out view (:mod:`ghnerf.eval.triangulated_teacher`), with each distilled
student's paired difference to it and its 3D MPJPE. PCK is given on all 25 joints and on the
joints the teacher defines (``MediaPipeTeacher.joints``: 23, no small toes). Encoders are
randomly initialised unless ImageNet weights are in the local cache (the table says
which). Goals (issue 23, printed with their intervals): the teacher-in-the-loop student above the robust
triangulated teacher at K = 2 and 3, level at 4, lower MPJPE at 2; the teacher-free student at its teacher's PCK
at K = 3; one student meeting its PCK goal within 0.5 dB of enerf's PSNR over two seeds (``--seed 1`` trains
seed 1's runs beside seed 0's).

The learning rate (1e-3, halved at half the steps) suits a short CPU budget; the paper's
schedule (5e-4 halved every 50k of 200k steps) scaled down to 500 steps leaves the rate at
3e-5 for the last quarter.

    .venv/bin/python benchmarks/student_quality.py [--steps 500 --subjects 34 --frames 8 --size 128]
        [--workdir W] [--only ROW ... | --all] [--seed S] [--jobs 2]

Without ``--only`` the run trains ``CURRENT_ROWS`` (``student_quality_rows.py``: the image-quality references, the
default recipe at the benchmark's and at ``ghnerf train``'s steps, the teacher-free recipe and the fast preset): the
rows the goals are judged on. ``--all`` trains every row of ``RUNS``; the table keeps each row not measured again
with the commit it was measured at.
"""

from ghnerf.student.cpu_policy import prepare_process

prepare_process()  # before torch loads OpenMP (as the ghnerf command does): idle threads sleep, not spin

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import numpy as np
from student_quality_report import write_report
from student_quality_rows import CURRENT_ROWS, RUNS

from ghnerf.app.distill import DistillConfig, distill
from ghnerf.base.errors import GHNeRFError, WeightsNotFoundError
from ghnerf.base.fileio import file_sha256, write_json
from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD
from ghnerf.eval.evaluate import evaluate_run
from ghnerf.eval.metrics import (
    coco17,
    coco_keypoint_ap,
    confidence_calibration,
    paired_pck_difference,
    pck,
)
from ghnerf.eval.teacher_comparison import per_view_pck_counts, shared_joint_mpjpe
from ghnerf.eval.triangulated_teacher import ALL_CAMERAS, TRIANGULATIONS, held_out_teacher
from ghnerf.student.config import PRESETS, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.distributed import pick_device
from ghnerf.student.encoders import ResNetEncoder
from ghnerf.student.precision import training_precision
from ghnerf.student.pretrain_2d_cache import pretraining_settings
from ghnerf.student.train import train
from ghnerf.student.train_config import CpuPrecision, TrainConfig
from ghnerf.synth.generate import SynthConfig, generate_dataset
from ghnerf.target_fusion import FusionConfig
from storage.catalog import code_version
from storage.targets import TargetStore
from teachers.mediapipe_pose import MediaPipeTeacher

TRIANGULATED_LABELS = {"dlt": "plain DLT", "robust": "robust", "lifted": "robust, joints no 2 views agree on lifted "
                                                                         "from one view"}


def paired(a_correct: list[int], b_correct: list[int], evaluated: list[int]) -> dict:
    return dataclasses.asdict(paired_pck_difference(a_correct, b_correct, evaluated))


def _generated(data: Path, subjects: int) -> bool:
    """A kept dataset with the wanted number of subjects (generation is deterministic)."""
    from ghnerf.data import open_dataset

    try:
        return len(open_dataset(data).subjects()) == subjects
    except GHNeRFError:
        return False


def _trained(run: Path, steps: int) -> bool:
    """A kept run whose final checkpoint has ``steps`` steps."""
    ck = run / "checkpoints" / f"step_{steps:07d}.pt"
    return ck.is_file() and (run / "history.json").is_file()


def _kept_evaluation(run: Path, source_views: int, max_views: int | None) -> dict | None:
    """A kept run's earlier evaluation with these settings, if it evaluated the same final checkpoint."""
    path = run / f"eval_test_{source_views}" / "metrics.json"
    if not path.is_file():
        return None
    rep = json.loads(path.read_text())
    same = (rep.get("source_views") == source_views and rep.get("checkpoint_step") is not None
            and rep.get("checkpoint_sha256") == file_sha256(run / "checkpoints" / "latest.pt")
            and (max_views is None or rep["views"] == max_views)
            and all("keypoints" in r for r in rep["per_view"]))  # older reports lack the student's keypoints
    return rep if same else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--subjects", type=int, default=34)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--image-scale", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed (initialisation, ray sampling); runs of seed N > 0 are kept in their own "
                         "folders (…-seedN) beside seed 0's, and the table keeps every seed's rows")
    ap.add_argument("--lr-halving-steps", type=int, default=None, help="default: steps / 2")
    ap.add_argument("--pretrain-2d-steps", type=int, default=1000,
                    help="2D pretraining steps of the teacher-free student with its own ray evidence")
    ap.add_argument("--rays", type=int, nargs=2, default=(256, 1024), help="coarse and fine rays per step")
    ap.add_argument("--max-views", type=int, default=None, help="held-out views evaluated (default: all)")
    ap.add_argument("--eval-source-views", type=int, nargs="+", default=[2, 3, 4],
                    help="source views per held-out target, one evaluation each (default: 2 as ENeRF tests humans, "
                         "3 as GHNeRF trains, and 4: every training camera)")
    ap.add_argument("--cpu-precision", choices=get_args(CpuPrecision),
                    default=TrainConfig.model_fields["cpu_precision"].default,
                    help="what training computes in on the CPU (TrainConfig.cpu_precision); runs trained in another "
                         "precision than float32 are kept in their own folders (…-bfloat16)")
    rows_to_train = ap.add_mutually_exclusive_group()
    rows_to_train.add_argument("--only", nargs="*", default=None,
                               help=f"row indices of RUNS to train (default: CURRENT_ROWS, {list(CURRENT_ROWS)})")
    rows_to_train.add_argument("--all", action="store_true", help=f"train all {len(RUNS)} rows of RUNS")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/student_quality.json"))
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the data, targets and runs here (default: a temporary folder); a run whose final "
                         "checkpoint is already there is evaluated again without retraining")
    ap.add_argument("--jobs", type=int, default=1,
                    help="train and evaluate the rows in this many processes at a time (one row each, the longest "
                         "first, OMP_NUM_THREADS = CPUs / jobs unless set; logs in WORKDIR/logs), then read them "
                         "back into one table")
    args = ap.parse_args()
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, not {args.jobs}")
    try:
        ResNetEncoder("resnet18", "imagenet")
        pretrained = "imagenet"
    except WeightsNotFoundError:
        pretrained = "none"
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        data, store_root = work / "data", work / "targets"
        if not _generated(data, args.subjects):
            generate_dataset(SynthConfig(layout="zju", subjects=args.subjects, frames=args.frames, cameras=8,
                                         size=args.size, distortion=False), data)
        distill(data, store_root, DistillConfig(teacher="mediapipe"))  # skips the shards already in the catalog
        store = TargetStore(store_root, "mediapipe")
        tcfg = TrainConfig(steps=args.steps, lr=args.lr,
                           lr_halving_steps=args.lr_halving_steps or max(args.steps // 2, 1), rays=tuple(args.rays),
                           image_scale=args.image_scale, checkpoint_every=args.steps, val_every=args.steps,
                           seed=args.seed, cpu_precision=args.cpu_precision,
                           pretrain_2d_cache=str(work / "pretrained_2d"))  # rows with one pose network pretrain it once
        precision = training_precision(args.cpu_precision, pick_device(tcfg.device)).autocast
        chosen = [int(i) for i in args.only] if args.only else range(len(RUNS)) if args.all else CURRENT_ROWS
        joints = MediaPipeTeacher.joints  # the joints the teacher defines (no small toes)
        # per K: the teacher on each held-out view and triangulated from that view's K source views; the first K
        # also over every camera of the frame (the label ceiling) and with the views' mask areas (COCO AP)
        ks = args.eval_source_views
        base = {k: held_out_teacher(ExampleSet(data, "test", k, args.image_scale, "none"), store, args.max_views,
                                    all_cameras=k == ks[0], areas=k == ks[0]) for k in ks}
        gts, on_view, areas = base[ks[0]].gt2d, base[ks[0]].on_view, base[ks[0]].areas
        counts = {"teacher": (per_view_pck_counts(on_view, gts), per_view_pck_counts(on_view, gts, joints))}
        for k, b in base.items():
            for method, kps in b.triangulated.items():
                counts[method, k] = (per_view_pck_counts(kps, gts), per_view_pck_counts(kps, gts, joints))
        evaluated = counts["teacher"][0][1]
        commit = _short(code_version())
        failed = []
        if args.jobs > 1:  # the rows in child processes; the loop below then reads their runs and evaluations back
            row_tcfgs = {i: _row_train_config(tcfg, RUNS[i][4].get("train", {}), args) for i in chosen}
            groups = {i: _pretraining_group(t) for i, t in row_tcfgs.items()}
            costs = _row_costs(row_tcfgs, groups)
            failed = _rows_in_child_processes(ap, args, sorted(chosen, key=costs.get, reverse=True), work, groups,
                                              Path(tcfg.pretrain_2d_cache))
            chosen = [i for i in chosen if i not in failed]
        for index in chosen:  # a run's folder is named after its row of RUNS, so --only reuses a full run's
            name, source, teacher, fused, overrides, label = RUNS[index]
            model_overrides = {k: v for k, v in overrides.items() if k != "train"}
            cfg = preset(name, pretrained=pretrained if "resnet" in name else PRESETS[name].pretrained,
                         **model_overrides)
            hm_store = store if teacher else None
            heat = "none" if not cfg.heatmap_head else ("store" if hm_store else "dataset")
            ex = ExampleSet(data, "train", image_scale=args.image_scale, heatmaps=heat, heatmap_store=hm_store,
                            fusion=FusionConfig() if fused else None, source_targets=cfg.source_heatmap_head)
            run = work / (f"{label.split()[0]}-{teacher or 'gt'}{'-fused' if fused else ''}-{index}"
                          + (f"-seed{args.seed}" if args.seed else "")
                          + (f"-{precision}" if precision != "float32" else ""))
            run_tcfg = _row_train_config(tcfg, overrides.get("train", {}), args)
            if _trained(run, run_tcfg.steps):  # a kept run: its training loop's time from its history
                history = json.loads((run / "history.json").read_text())
                seconds = history[-1]["step"] / history[-1]["it_s"]
            else:
                t0 = time.perf_counter()
                train(cfg, run_tcfg, ex, run, log=lambda s: None)
                seconds = time.perf_counter() - t0
            for k in ks:
                rep = _kept_evaluation(run, k, args.max_views) or evaluate_run(
                    run, data, "test", args.max_views, out=run / f"eval_test_{k}", source_views=k)
                m = rep["metrics"]
                diffs = dict.fromkeys(["teacher", *TRIANGULATIONS])  # each rival, as pck_minus_<rival>
                mpjpe_diffs = dict.fromkeys(TRIANGULATIONS)  # and as mpjpe_shared_minus_<rival>
                pck_joints = None
                if m.get("pck") is not None:
                    pv = rep["per_view"]
                    if ([r["pck_evaluated"] for r in pv] != evaluated
                            or [(r["subject"], str(r["camera"])) for r in pv] != [(s, c) for s, _, c in base[k].keys]):
                        raise RuntimeError("the student's and the teacher's evaluated views differ")
                    student_kp = np.array([r["keypoints"] for r in pv], dtype=np.float64)
                    pck_joints = pck(student_kp, gts, joints=joints).value
                    if teacher:  # each distilled student against the teacher and the triangulated teacher
                        correct = [r["pck_correct"] for r in pv]
                        diffs = {b: paired(correct, counts[b if b == "teacher" else (b, k)][0][0], evaluated)
                                 for b in diffs}
                        mpjpe_diffs = shared_joint_mpjpe(student_kp, base[k], TRIANGULATIONS)
                rows.append({"row": index, "model": label, "config": cfg.name, "overrides": overrides,
                             "targets": source, "source_views": k, "encoder_weights": rep["pretrained_weights"],
                             "psnr": m["psnr"], "ssim": m["ssim"],
                             "lpips": m["lpips"] if isinstance(m["lpips"], float) else None,
                             "mse": m.get("heatmap_mse"), "pck": m.get("pck"), "pck_teacher_joints": pck_joints,
                             "coco_ap": m.get("coco_ap"), "calibration": m.get("calibration"),
                             **{f"pck_minus_{b}": d for b, d in diffs.items()},
                             **{f"mpjpe_shared_minus_{b}": d for b, d in mpjpe_diffs.items()},
                             "mpjpe_m": m.get("mpjpe_triangulated_m"),
                             "mpjpe_volumetric_m": m.get("mpjpe_volumetric_m"), "fps": m.get("fps"),
                             "train_seconds": seconds, "views": rep["views"],
                             "measured_at": _short(rep.get("code_version") or commit),  # the code it was trained by
                             "seed": args.seed, "steps": run_tcfg.steps, "precision": precision,
                             "rival_rel_threshold": FEW_VIEWS_REL_THRESHOLD})
                print(f"{label} ({source}), {k} source views: PCK {m.get('pck')}, AP {m.get('coco_ap')}, "
                      f"PSNR {m['psnr']:.2f}, trained in {seconds:.0f} s", flush=True)
        rows = _with_kept_rows(args.out, rows, args)
        rows += _reference_rows(base, counts, gts, on_view, areas, evaluated, commit)
    result = {"benchmark": "student_quality", "args": {k: str(v) if isinstance(v, Path) else v
                                                      for k, v in vars(args).items()},
              "train_config": tcfg.model_dump(), "encoder_weights": pretrained, "views": len(evaluated),
              "teacher_joints": len(joints), "total_seconds": time.perf_counter() - t_start, "rows": rows}
    result["calibration_figure"] = write_report(result, args.out)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    if failed:
        raise SystemExit(f"rows {', '.join(map(str, failed))} failed: see their logs in {work / 'logs'}")


def _pretraining_group(tcfg: TrainConfig) -> tuple | None:
    """Rows of one group may share a 2D-pretrained pose network through the cache (its key decides; this only
    schedules them): the same 2D pretraining settings (the key's, :func:`pretraining_settings`) and precision.
    None: no 2D pretraining."""
    if not tcfg.pretrain_2d_steps:
        return None
    return tuple(sorted(pretraining_settings(tcfg).items())) + (tcfg.cpu_precision,)


def _row_costs(tcfgs: dict[int, TrainConfig], groups: dict[int, tuple | None]) -> dict[int, float]:
    """Each row's training work, roughly, in NeRF steps (a 2D pretraining step costs about half of one); the 2D
    pretraining counted for the first row of its group (by that cost) only."""
    costs = {i: t.steps + 0.5 * t.pretrain_2d_steps for i, t in tcfgs.items()}
    first = {}
    for i in sorted(costs, key=lambda i: (-costs[i], i)):
        if groups[i] is not None:
            first.setdefault(groups[i], i)
    return {i: c if groups[i] is None or first[groups[i]] == i else tcfgs[i].steps for i, c in costs.items()}


def _child_argv(ap: argparse.ArgumentParser, args, row: int, work: Path) -> list[str]:
    """This run's command line for one row in a child process: every option as given, but ``--only`` that row, no
    ``--jobs`` (so one process), the shared work folder and the child's own ``--out`` beside its log."""
    own = {"only", "all", "out", "workdir", "jobs", "help"}
    argv = []
    for action in ap._actions:
        value = getattr(args, action.dest, None)
        if action.option_strings and action.dest not in own and value is not None:
            argv += [action.option_strings[0], *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return argv + ["--only", str(row), "--workdir", str(work), "--out", str(_child_log(work, row, args.seed, ".json"))]


def _child_log(work: Path, row: int, seed: int, suffix: str) -> Path:
    return work / "logs" / f"row{row}-seed{seed}{suffix}"


def _next_row(pending: list[int], running: dict[int, float], groups: dict[int, tuple | None],
              stored: list[float]) -> int | None:
    """The first of ``pending`` that may start now: not while a running row of its pretraining group (``running``:
    row -> start time) has not yet stored a pose network (``stored``: the cache entries' times); None: wait."""
    def ready(row: int) -> bool:
        return all(groups[row] is None or groups[other] != groups[row] or any(t > t0 for t in stored)
                   for other, t0 in running.items())

    return next((r for r in pending if ready(r)), None)


def _rows_in_child_processes(ap: argparse.ArgumentParser, args, rows: list[int], work: Path,
                             groups: dict[int, tuple | None], cache: Path) -> list[int]:
    """Train and evaluate ``rows`` in order, ``args.jobs`` child processes at a time (each ``--only`` one row, on the
    data and targets already in ``work``); a row waits while a row of its pretraining group (``groups``) runs and
    has not yet stored a pose network in ``cache``, so that it can take it. Returns the rows whose process failed
    (its log says why)."""
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))
    pending, running, failed, started = list(rows), {}, [], {}
    while pending or running:
        while len(running) < args.jobs:
            stored = [p.stat().st_mtime for p in cache.glob("*.pt")] if cache.is_dir() else []
            row = _next_row(pending, {r: started[r] for r in running}, groups, stored)
            if row is None:
                break
            pending.remove(row)
            started[row] = time.time()
            log = _child_log(work, row, args.seed, ".log").open("w")
            proc = subprocess.Popen([sys.executable, __file__, *_child_argv(ap, args, row, work)], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            running[row] = (proc, log, time.perf_counter())
            print(f"row {row}: started, {len(pending)} waiting (log {log.name})", flush=True)
        time.sleep(1.0)
        for row, (proc, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[row]
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}; see {log.name})"
            print(f"row {row}: {status} after {time.perf_counter() - t0:.0f} s", flush=True)
            if proc.returncode:
                failed.append(row)
    return failed


def _row_train_config(tcfg: TrainConfig, overrides: dict, args) -> TrainConfig:
    """The benchmark's training settings with a row's own (``--pretrain-2d-steps`` read from the command line); a
    row with its own ``steps`` halves its learning rate at its own half-way point (unless it gives its own
    ``lr_halving_steps``) and checkpoints at its end."""
    update = {k: args.pretrain_2d_steps if v == "--pretrain-2d-steps" else v for k, v in overrides.items()}
    if "steps" in update:  # the row's own halving schedule, if it has one, wins
        update = {"lr_halving_steps": args.lr_halving_steps or max(update["steps"] // 2, 1),
                  "checkpoint_every": update["steps"], "val_every": update["steps"]} | update
    return tcfg.model_copy(update=update)


def _short(version: str) -> str:
    """A :func:`storage.catalog.code_version` (``sha[+dirty]``, as checkpoints record it) as ``sha7[+]``: what a
    row was measured at."""
    sha, dirty, _ = version.partition("+")
    return sha[:7] + dirty


def _with_kept_rows(out: Path, rows: list[dict], args) -> list[dict]:
    """This run's rows, and the student rows of an earlier table at ``out`` (same steps and data size, any seed)
    that this run did not measure again, each keeping the commit it was measured at."""
    if not out.is_file():
        return rows
    earlier = json.loads(out.read_text())
    same = all(earlier.get("args", {}).get(k) == getattr(args, k) for k in ("steps", "subjects", "size"))
    measured = {(r["row"], r["source_views"], r["seed"]) for r in rows}
    kept = [r for r in earlier.get("rows", []) if same and r.get("row") is not None
            and (r["row"], r["source_views"], r.get("seed", 0)) not in measured and r["row"] < len(RUNS)
            and r["model"] == RUNS[r["row"]][5]]
    return rows + kept


def _reference_rows(base: dict, counts: dict, gts, on_view, areas, evaluated: list[int], commit: str) -> list[dict]:
    """The teacher and the triangulated teachers (same inputs as the student, no learning) on the same views."""
    none = {"encoder_weights": "pretrained (bundled)", "psnr": None, "ssim": None, "lpips": None, "mse": None,
            **{f"pck_minus_{m}": None for m in TRIANGULATIONS},
            **{f"mpjpe_shared_minus_{m}": None for m in TRIANGULATIONS}, "mpjpe_volumetric_m": None, "fps": None,
            "train_seconds": None, "measured_at": commit, "rival_rel_threshold": FEW_VIEWS_REL_THRESHOLD}

    def ap(kps):
        value = coco_keypoint_ap(coco17(kps), coco17(gts), areas)
        return value if np.isfinite(value) else None

    rows = []
    for k, b in base.items():
        for method, kps in b.triangulated.items():
            (c25, n25), (c_j, n_j) = counts[method, k]
            label = ("mediapipe triangulated over all cameras (robust; label ceiling)" if method == ALL_CAMERAS
                     else f"mediapipe triangulated ({TRIANGULATED_LABELS[method]})")
            rows.append(none | {"model": label, "targets": "teacher on every camera" if method == ALL_CAMERAS
                                else "teacher on the source views", "source_views": None if method == ALL_CAMERAS
                                else k, "pck": sum(c25) / max(sum(n25), 1),
                                "pck_teacher_joints": sum(c_j) / max(sum(n_j), 1), "coco_ap": ap(kps),
                                "calibration": None, "pck_minus_teacher": paired(c25, counts["teacher"][0][0],
                                                                                 evaluated),
                                "mpjpe_m": b.mpjpe(method)})
    (c25, n25), (c_j, n_j) = counts["teacher"]
    rows.append(none | {"model": "mediapipe (the teacher itself, on the real images)", "targets": "-",
                        "source_views": None, "pck": sum(c25) / max(sum(n25), 1),
                        "pck_teacher_joints": sum(c_j) / max(sum(n_j), 1), "coco_ap": ap(on_view),
                        "calibration": confidence_calibration(on_view, gts).as_dict(), "pck_minus_teacher": None,
                        "mpjpe_m": None})
    return rows


if __name__ == "__main__":
    main()
