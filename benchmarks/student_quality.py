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
"""

from ghnerf.student.cpu_policy import prepare_process

prepare_process()  # before torch loads OpenMP (as the ghnerf command does): idle threads sleep, not spin

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from ghnerf.app.distill import DistillConfig, distill
from ghnerf.base.errors import GHNeRFError, WeightsNotFoundError
from ghnerf.base.fileio import file_sha256, write_bytes, write_image, write_json
from ghnerf.base.viz import reliability_diagram
from ghnerf.eval.evaluate import evaluate_run
from ghnerf.eval.metrics import coco17, coco_keypoint_ap, confidence_calibration, paired_pck_difference, pck
from ghnerf.eval.teacher_comparison import per_view_pck_counts
from ghnerf.eval.triangulated_teacher import ALL_CAMERAS, held_out_teacher
from ghnerf.student.config import PRESETS, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.encoders import ResNetEncoder
from ghnerf.student.train import train
from ghnerf.student.train_config import TrainConfig
from ghnerf.synth.generate import SynthConfig, generate_dataset
from ghnerf.target_fusion import FusionConfig
from storage.catalog import code_version
from storage.targets import TargetStore
from teachers.mediapipe_pose import MediaPipeTeacher

TRIANGULATED_LABELS = {"dlt": "plain DLT", "robust": "robust"}


def paired(a_correct: list[int], b_correct: list[int], evaluated: list[int]) -> dict:
    return dataclasses.asdict(paired_pck_difference(a_correct, b_correct, evaluated))


# The teacher-free student (no teacher network at test time): 2D pretraining of the encoder and its source heatmap
# head on the teacher's heatmaps of the training photographs, then those heatmaps pooled along each ray as ray
# evidence (the ghnerf-resnet18-evidence preset; ghnerf.student.pretrain_2d, ghnerf.student.ray_evidence).
TEACHER_FREE = {"train": {"pretrain_2d_steps": "--pretrain-2d-steps"}}
# ENeRF's ZJU-MoCap training (configs/enerf/zjumocap_eval.yaml): train_input_views [2, 3], prob [0.9, 0.1]
ENERF_MIX = {"source_view_mix": {2: 0.9, 3: 0.1}}

RUNS = (  # (config, heatmap targets, teacher, fused, config overrides (+ "train": TrainConfig ones), row label)
    ("enerf", "dataset joints", None, False, {}, "enerf"),
    ("enerf-heatmap", "dataset joints", None, False, {}, "enerf-heatmap (paper baseline)"),
    ("ghnerf-resnet18", "dataset joints", None, False, {}, "ghnerf-resnet18"),
    ("ghnerf-resnet18", "mediapipe shards", "mediapipe", False, {}, "ghnerf-resnet18"),
    ("ghnerf-resnet18", "mediapipe shards, fused over views", "mediapipe", True, {}, "ghnerf-resnet18"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {"ray_evidence_samples": 0},
     "ghnerf-mediapipe without ray evidence"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {}, "ghnerf-mediapipe"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {"joint_hypotheses": True},
     "ghnerf-mediapipe + triangulated joint hypotheses"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True, TEACHER_FREE,
     "ghnerf-resnet18-evidence (2D-pretrained, own source heatmaps as ray evidence)"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "detach_heads": True},
     "ghnerf-mediapipe + triangulated joint hypotheses, detached heads"),
    ("enerf", "dataset joints", None, False, {"train": ENERF_MIX}, "enerf, trained on 2/3 source views"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "train": ENERF_MIX},
     "ghnerf-mediapipe + triangulated joint hypotheses, trained on 2/3 source views"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True,
     {"train": TEACHER_FREE["train"] | ENERF_MIX},
     "ghnerf-resnet18-evidence (2D-pretrained, own source heatmaps as ray evidence), trained on 2/3 source views"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": ENERF_MIX},
     "ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, trained on 2/3 source views"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": TEACHER_FREE["train"] | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated, residual heatmap head, trained on 2/3 "
      "source views")),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": ENERF_MIX | {"steps": 1000}},
     ("ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, trained on 2/3 source views, "
      "1000 steps")),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "detach_heads": True, "train": ENERF_MIX},
     ("ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, detached heads, trained on 2/3 "
      "source views")),
)
ENERF_ROWS = (0, 10)  # the image-quality reference
TEACHER_IN_THE_LOOP = (7, 11, 13, 15, 16)  # the best students that read the teacher network's outputs at test time
TEACHER_FREE_ROWS = (8, 12, 14)  # no teacher network at test time (the paper's setting)


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
    ap.add_argument("--only", nargs="*", default=None, help="row indices of RUNS to train (default: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/student_quality.json"))
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the data, targets and runs here (default: a temporary folder); a run whose final "
                         "checkpoint is already there is evaluated again without retraining")
    args = ap.parse_args()
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
                           seed=args.seed)
        chosen = [int(i) for i in args.only] if args.only else range(len(RUNS))
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
                          + (f"-seed{args.seed}" if args.seed else ""))
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
                diffs = {"teacher": None, "dlt": None, "robust": None}
                pck_joints = None
                if m.get("pck") is not None:
                    pv = rep["per_view"]
                    if [r["pck_evaluated"] for r in pv] != evaluated:
                        raise RuntimeError("the student's and the teacher's evaluated views differ")
                    student_kp = np.array([r["keypoints"] for r in pv], dtype=np.float64)
                    pck_joints = pck(student_kp, gts, joints=joints).value
                    if teacher:  # each distilled student against the teacher and the triangulated teacher
                        correct = [r["pck_correct"] for r in pv]
                        diffs = {b: paired(correct, counts[b if b == "teacher" else (b, k)][0][0], evaluated)
                                 for b in diffs}
                rows.append({"row": index, "model": label, "config": cfg.name, "overrides": overrides,
                             "targets": source, "source_views": k, "encoder_weights": rep["pretrained_weights"],
                             "psnr": m["psnr"], "ssim": m["ssim"],
                             "lpips": m["lpips"] if isinstance(m["lpips"], float) else None,
                             "mse": m.get("heatmap_mse"), "pck": m.get("pck"), "pck_teacher_joints": pck_joints,
                             "coco_ap": m.get("coco_ap"), "calibration": m.get("calibration"),
                             "pck_minus_teacher": diffs["teacher"], "pck_minus_dlt": diffs["dlt"],
                             "pck_minus_robust": diffs["robust"],
                             "mpjpe_m": m.get("mpjpe_triangulated_m"),
                             "mpjpe_volumetric_m": m.get("mpjpe_volumetric_m"), "fps": m.get("fps"),
                             "train_seconds": seconds, "views": rep["views"],
                             "measured_at": _short(rep.get("code_version") or commit),  # the code it was trained by
                             "seed": args.seed, "steps": run_tcfg.steps})
                print(f"{label} ({source}), {k} source views: PCK {m.get('pck')}, AP {m.get('coco_ap')}, "
                      f"PSNR {m['psnr']:.2f}, trained in {seconds:.0f} s", flush=True)
        rows = _with_kept_rows(args.out, rows, args)
        rows += _reference_rows(base, counts, gts, on_view, areas, evaluated, commit)
    table = Table(title=f"student quality: {args.subjects} synthetic subjects ({args.frames} frames, 8 cameras, "
                        f"{args.size}²), {len(evaluated)} held-out views, {args.steps} steps each unless the row says, CPU")
    for col in ("#", "model", "seed", "heatmap targets", "sources", "PSNR", "SSIM", "PCK@0.2 (25 joints)",
                f"PCK@0.2 ({len(joints)} teacher joints)", "COCO AP", "PCK - teacher [95% CI]",
                "PCK - tri. DLT [95% CI]", "PCK - tri. robust [95% CI]", "MPJPE m (volumetric)",
                "MPJPE m (triangulated)", "measured at"):
        table.add_column(col)

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    def vs(d):
        return "-" if d is None else f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"

    for r in sorted(rows, key=lambda r: (r.get("row", 99), r["model"], r.get("seed") or 0, r["source_views"] or 0)):
        table.add_row(f(r.get("row"), "d"), r["model"], f(r.get("seed") if r.get("row") is not None else None, "d"),
                      r["targets"], f(r["source_views"], "d"), f(r["psnr"], ".2f"),
                      f(r["ssim"], ".3f"), f(r["pck"], ".3f"), f(r["pck_teacher_joints"], ".3f"),
                      f(r.get("coco_ap"), ".3f"), vs(r["pck_minus_teacher"]), vs(r["pck_minus_dlt"]),
                      vs(r["pck_minus_robust"]), f(r["mpjpe_volumetric_m"], ".3f"), f(r["mpjpe_m"], ".3f"),
                      r.get("measured_at", "-"))
    Console(width=300).print(table)
    print("PCK - teacher / tri. DLT / tri. robust: the row's PCK (25 joints) minus the teacher's on the view itself / "
          "the teacher triangulated from the same K source views, on the same views, 95% percentile bootstrap over "
          "views")
    print("mediapipe triangulated: the teacher's keypoints of the K source views each held-out view's student gets, "
          "triangulated with plain confidence-weighted DLT over every view reporting the joint, or robustly "
          "(ghnerf.base.multiview: RANSAC over view pairs, refit on inliers), projected into the view; 'all cameras': "
          "robustly over every camera of the frame, the held-out one included (the label ceiling: what the fused "
          "training labels approximate). MPJPE m (triangulated): those 3D joints against the synthetic ones")
    for line in _goal_lines(rows):
        print(line)
    print(f"encoders: {pretrained} (random init when 'none'); LPIPS n/a without local VGG16 weights; "
          f"total {time.perf_counter() - t_start:.0f} s")
    figure = _calibration_figure(rows, args.out.with_name(args.out.stem + "_calibration.png"))
    markdown = args.out.with_suffix(".md")
    write_bytes(markdown, "\n".join(_markdown(rows, ks) + [""] + _goal_lines(rows)).encode())
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(args.out, {"benchmark": "student_quality", "args": settings,
                          "train_config": tcfg.model_dump(), "encoder_weights": pretrained,
                          "total_seconds": time.perf_counter() - t_start, "calibration_figure": figure,
                          "rows": rows})
    print(f"wrote {args.out} and {markdown}")


def _row_train_config(tcfg: TrainConfig, overrides: dict, args) -> TrainConfig:
    """The benchmark's training settings with a row's own (``--pretrain-2d-steps`` read from the command line); a
    row with its own ``steps`` halves its learning rate at its own half-way point and checkpoints at its end."""
    update = {k: args.pretrain_2d_steps if v == "--pretrain-2d-steps" else v for k, v in overrides.items()}
    if "steps" in update:
        update |= {"lr_halving_steps": args.lr_halving_steps or max(update["steps"] // 2, 1),
                   "checkpoint_every": update["steps"], "val_every": update["steps"]}
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
            "pck_minus_dlt": None, "pck_minus_robust": None, "mpjpe_volumetric_m": None, "fps": None,
            "train_seconds": None, "measured_at": commit}

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


def _best(rows: list[dict], indices, k: int, seed: int | None = None) -> dict | None:
    """The row of ``indices`` (of ``seed``, or any) with the highest PCK at ``k`` source views."""
    found = [r for r in rows if r.get("row") in indices and r["source_views"] == k and r["pck"] is not None
             and (seed is None or r.get("seed", 0) == seed)]
    return max(found, key=lambda r: r["pck"]) if found else None


def _interval(d: dict) -> str:
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


# issue 23's PCK goal of each kind of student: (rows, K, reference, met(paired difference))
PCK_GOALS = ((TEACHER_IN_THE_LOOP, 2, "robust", lambda d: d["low"] > 0),
             (TEACHER_FREE_ROWS, 3, "teacher", lambda d: d["difference"] >= 0))


def _goal_lines(rows: list[dict]) -> list[str]:
    """Issue 23's goals, each with the measured difference and its interval, met or by how much not; per seed,
    then the one-student goal (its PCK goal on every seed, PSNR within 0.5 dB of enerf on the mean over seeds)."""
    def ref(k, model_prefix):
        return next((r for r in rows if r["model"].startswith(model_prefix) and r["source_views"] == k), None)

    lines = ["goals (issue 23; paired 95 % intervals over the same views):"]
    for seed in sorted({r.get("seed", 0) for r in rows if r.get("row") is not None}):
        for k, want in ((2, "above"), (3, "above"), (4, "at least level")):
            r = _best(rows, TEACHER_IN_THE_LOOP, k, seed)
            if r and r["pck_minus_robust"]:
                d = r["pck_minus_robust"]
                met = d["low"] > 0 if want == "above" else d["high"] >= 0
                lines.append(f"  seed {seed}: teacher-in-the-loop (row {r['row']}) - robust triangulated teacher, "
                             f"K = {k}: {_interval(d)}: {'met' if met else 'not met'} (goal: {want})")
        r, tri = _best(rows, TEACHER_IN_THE_LOOP, 2, seed), ref(2, "mediapipe triangulated (robust)")
        if r and tri and r["mpjpe_m"] is not None and tri["mpjpe_m"] is not None:
            lines.append(f"  seed {seed}: teacher-in-the-loop (row {r['row']}) MPJPE at K = 2: {r['mpjpe_m']:.3f} m vs "
                         f"the robust triangulation's {tri['mpjpe_m']:.3f} m: "
                         f"{'met' if r['mpjpe_m'] < tri['mpjpe_m'] else 'not met'}")
        r = _best(rows, TEACHER_FREE_ROWS, 3, seed)
        if r and r["pck_minus_teacher"]:
            d = r["pck_minus_teacher"]
            lines.append(f"  seed {seed}: teacher-free (row {r['row']}) - the teacher on the view, K = 3: "
                         f"{_interval(d)}: {'met' if d['difference'] >= 0 else 'not met'} (goal: reach it)")
        r = _best(rows, TEACHER_FREE_ROWS, 2, seed)
        if r and r["pck_minus_robust"]:
            d = r["pck_minus_robust"]
            lines.append(f"  seed {seed}: teacher-free (row {r['row']}) - robust triangulated teacher, K = 2: "
                         f"{_interval(d)}: {'met' if d['low'] > 0 else 'not met'} (goal: above)")
    lines += _one_student_lines(rows)
    return lines


def _one_student_lines(rows: list[dict]) -> list[str]:
    """Per student row: its PCK goal (``PCK_GOALS``) on each seed, and its PSNR minus enerf's at the same K, each
    averaged over the seeds measured (enerf: the best of ``ENERF_ROWS`` by that mean)."""
    def mean_psnr(index, k) -> tuple[float, int] | None:
        values = [r["psnr"] for r in rows if r.get("row") == index and r["source_views"] == k and r["psnr"]]
        return (float(np.mean(values)), len(values)) if values else None

    lines = []
    for indices, k, reference, met in PCK_GOALS:
        enerf = [m for m in (mean_psnr(i, k) for i in ENERF_ROWS) if m]
        for index in indices:
            seeds = [r for r in rows if r.get("row") == index and r["source_views"] == k
                     and r[f"pck_minus_{reference}"]]
            if not seeds or not enerf:
                continue
            psnr, n = mean_psnr(index, k)
            gap = psnr - max(enerf)[0]
            pck_met = all(met(r[f"pck_minus_{reference}"]) for r in seeds)
            diffs = ", ".join(f"seed {r.get('seed', 0)} {_interval(r[f'pck_minus_{reference}'])}" for r in seeds)
            lines.append(f"  one student: row {index} at K = {k}, PCK - {reference}: {diffs} "
                         f"({'met' if pck_met else 'not met'}); PSNR {psnr:.2f} dB (mean of {n} seed(s)), "
                         f"{gap:+.2f} dB from enerf ({'within' if gap >= -0.5 else 'not within'} 0.5 dB): "
                         f"{'met' if pck_met and gap >= -0.5 and len(seeds) >= 2 else 'not met'} "
                         f"(goal: both, over two seeds)")
    return lines


def _markdown(rows: list[dict], ks: list[int]) -> list[str]:
    """The table as Markdown, one line per model with its K = 2 / 3 / 4 values side by side (the README's)."""
    def f(v, spec):
        return "–" if v is None else format(v, spec)

    def d(v):
        return "–" if v is None else f"{v['difference']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"

    per = "/".join(map(str, ks))
    lines = [f"| # | model | seed | heatmap targets | PSNR (K = {per}) | PCK@0.2 (K = {per}) | COCO AP (K = {per}) | "
             f"− teacher (K = {per}) | − triangulated robust (K = {per}) | MPJPE m triangulated (K = {per}) | "
             "measured at |", "|---|" * 1 + "---|" * 10]
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r.get("row", 99), r["model"], r["targets"], r.get("seed") if r.get("row") is not None else None)
        groups.setdefault(key, {})[r["source_views"]] = r
    for (index, model, targets, seed), by_k in sorted(groups.items(),
                                                       key=lambda kv: (kv[0][0], kv[0][1], kv[0][3] or 0)):
        cells = [by_k.get(k) or by_k.get(None) for k in ks]  # None: not measured at that K

        def joined(field, fmt):
            return " / ".join(fmt(c.get(field)) if c else "–" for c in cells) if len(by_k) > 1 or None not in by_k \
                else fmt(cells[0].get(field))

        lines.append(f"| {'' if index == 99 else index} | {model} | {'' if seed is None else seed} | {targets} | {joined('psnr', lambda v: f(v, '.2f'))} | "
                     f"{joined('pck', lambda v: f(v, '.3f'))} | {joined('coco_ap', lambda v: f(v, '.3f'))} | "
                     f"{joined('pck_minus_teacher', d)} | {joined('pck_minus_robust', d)} | "
                     f"{joined('mpjpe_m', lambda v: f(v, '.3f'))} | "
                     f"{next(c for c in cells if c).get('measured_at', '–')} |")
    return lines


def _calibration_figure(rows: list[dict], path: Path) -> str | None:
    """Reliability diagrams side by side: the teacher on the view, and the best student at K = 2 (PCK)."""
    teacher = next((r for r in rows if r["model"].startswith("mediapipe (the teacher") and r["calibration"]), None)
    student = _best(rows, TEACHER_IN_THE_LOOP + TEACHER_FREE_ROWS, 2)
    panels = []
    for title, r in ((f"student (row {student['row']}, K=2)" if student else "", student), ("teacher", teacher)):
        if r and r.get("calibration"):
            img = reliability_diagram(r["calibration"]["within_pck"], r["calibration"]["joints"], size=320)
            header = np.full((28, img.shape[1], 3), 255, np.uint8)
            cv2.putText(header, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
            panels.append(np.concatenate([header, img]))
    if not panels:
        return None
    write_image(path, np.concatenate(panels, axis=1))
    return str(path)


if __name__ == "__main__":
    main()
