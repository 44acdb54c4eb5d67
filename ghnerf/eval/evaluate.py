"""Evaluate a trained run on held-out views: metrics.json, a Markdown report, and pictures.

For every test view (test cameras of test subjects, sources from the training
cameras): the fine level is rendered inside the projected body box; PSNR / SSIM
inside the box (ENeRF's ``mask_at_box``), LPIPS when the VGG weights are in the
local cache (otherwise reported as unavailable, never computed with a random
backbone), heatmap MSE, 2D keypoints the OpenPose way and PCK@0.2 and COCO keypoint
AP against the dataset's 2D joints, network time per view.
"""

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ghnerf.base.errors import WeightsNotFoundError
from ghnerf.base.fileio import file_sha256, write_bytes, write_image, write_json
from ghnerf.base.kinds import HeatmapSource
from ghnerf.base.viz import draw_skeleton, heatmap_overlay, reliability_diagram
from ghnerf.data.views import MIN_SOURCE_VIEWS
from ghnerf.eval.metric_names import METRICS, Metric, table_rows
from ghnerf.eval.metrics import (
    coco17,
    coco_keypoint_ap,
    confidence_calibration,
    heatmap_mse,
    masked_psnr,
    masked_ssim,
    openpose_keypoints,
    pck,
)
from ghnerf.eval.spec import EvaluateSpec
from ghnerf.eval.volumetric import HeatmapVolume, joints_error
from ghnerf.student.checkpoints import load_checkpoint
from ghnerf.student.cpu_policy import apply_inference_policy
from ghnerf.student.data import ExampleSet
from ghnerf.student.distributed import pick_device
from ghnerf.student.inference import FrameEncodings, render_full_view
from ghnerf.student.model import GHNeRF
from ghnerf.student.state_check import load_checked

DEFINITIONS = {m.value: info.definition for m, info in METRICS.items()} | {
    "calibration": "per confidence bin (10 bins over [0, 1]) of the predicted joints PCK evaluates: how many, and the "
                   "fraction within the PCK radius (ghnerf.eval.metrics.confidence_calibration)"}


class LPIPSMetric:
    """LPIPS-VGG from local weights only (see :class:`ghnerf.student.losses.PerceptualLoss`)."""

    def __init__(self):
        from ghnerf.student.losses import PerceptualLoss

        try:
            self.fn = PerceptualLoss()
            self.reason = None
        except WeightsNotFoundError as exc:
            self.fn, self.reason = None, str(exc)

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> float | None:
        if self.fn is None:
            return None
        with torch.no_grad():
            return float(self.fn(torch.from_numpy(pred).float(), torch.from_numpy(gt).float()))


def load_run_model(checkpoint: Path, device: torch.device) -> tuple[GHNeRF, dict]:
    ck = load_checkpoint(checkpoint)
    cfg = ck["student_config"]
    model = GHNeRF(cfg.without_pretrained_load()).to(device)  # encoder weights come from the checkpoint
    load_checked(model, ck["model"], checkpoint)
    model.eval()
    return model, ck


def evaluate_run(run: str | Path, data: str | Path, split: str = "test", max_views: int | None = None,
                 out: str | Path | None = None, checkpoint: str | Path | None = None, cse_store=None,
                 source_views: int | None = None, teacher_store=None,
                 warn: Callable[[str], None] = lambda line: None,
                 on_view: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate ``run`` (its latest checkpoint unless ``checkpoint``); writes metrics.json and report.md.

    Args:
        cse_store: a :class:`storage.targets.TargetStore` of a CSE teacher, for the CSE metric.
        teacher_store: a TargetStore of a pose teacher: where the student and the teacher disagree on the
            views, and which one the evidence supports (disagreement.json, :mod:`ghnerf.eval.disagreement`).
        source_views: source views per target (default: the number the run was trained with; the network
            pools over any number, as ENeRF's test_input_views may differ from its training views).
        warn: told the choices made for the dataset (cameras held out of a one-subject dataset, fewer source
            views with few cameras), which metrics.json records too.
        on_view: called after each view with (views done, views to do) (progress bars).
    """
    run = Path(run)
    for store in (cse_store, teacher_store):
        if store is not None:
            store.check_inputs(data)  # targets of changed inputs are refused before anything is computed
    ck_path = Path(checkpoint) if checkpoint else run / "checkpoints" / "latest.pt"
    out = Path(out) if out else run / f"eval_{split}"
    device = pick_device("auto")
    model, ck = load_run_model(ck_path, device)
    cpu = apply_inference_policy(device)
    cfg, tcfg = ck["student_config"], ck["train_config"]
    views = replace(cfg, source_views=source_views).source_views if source_views is not None else cfg.source_views
    examples = ExampleSet(data, split, views, tcfg.image_scale,
                          HeatmapSource.DATASET if cfg.heatmap_head else HeatmapSource.NONE,
                          cse_store=cse_store if cfg.cse_head else None,
                          fewest_source_views=views if source_views is not None else MIN_SOURCE_VIEWS)
    for line in examples.notices():
        warn(line)
    lp = LPIPSMetric()
    n = len(examples) if max_views is None else min(max_views, len(examples))
    rows, preds, gts, areas = [], [], [], []
    per_frame: dict[tuple, list] = {}
    encodings = FrameEncodings(model, device)  # a frame's views sharing their sources encode them once
    volume, volumetric_errors = None, []  # the frame's heatmap volume (each view added as rendered); per-frame MPJPE
    compared = []  # (item index, student keypoints, view image) for the disagreement report
    for i in range(n):
        ex = examples.example(i)
        frame = examples.items[i][:2]
        t0 = time.perf_counter()
        encoding = encodings.get(frame, examples.sources(i), ex.batch)
        r = render_full_view(model, ex, device, encoding=encoding)
        seconds = time.perf_counter() - t0
        box = r["box"].numpy()
        pred = r["rgb"].clamp(0, 1).numpy()
        gt = ex.image.numpy()
        ys, xs = np.nonzero(box)
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        row = {"subject": ex.key[0], "frame_id": ex.key[1], "camera": ex.key[2],
               Metric.PSNR: masked_psnr(pred, gt, box), Metric.SSIM: masked_ssim(pred, gt, box),
               Metric.LPIPS: lp(pred[crop], gt[crop]), Metric.RENDER_SECONDS: seconds}
        if r["heatmaps"] is not None and ex.heatmaps is not None:
            hm = r["heatmaps"].numpy()
            row[Metric.HEATMAP_MSE] = heatmap_mse(hm, ex.heatmaps.numpy(), ex.joint_valid.numpy(), box)
            kp = openpose_keypoints(hm)
            preds.append(kp)
            gts.append(ex.joints2d.numpy())
            areas.append(float(ex.mask.numpy().sum()))
            view_pck = pck(kp[None], ex.joints2d.numpy()[None])
            row.update(pck_view=view_pck.value, pck_correct=view_pck.correct, pck_evaluated=view_pck.evaluated,
                       keypoints=[[round(float(v), 3) if np.isfinite(v) else None for v in j] for j in kp])
            if teacher_store is not None:
                compared.append((i, kp, _u8(gt)))
            if ex.joints3d is not None:
                per_frame.setdefault(ex.key[:2], []).append((ex, kp))
                if ex.bounds is not None:
                    volume = volume or HeatmapVolume(model, ex.bounds, device)
                    volume.add(ex.batch, encoding)
            if i < 4:
                _view_pictures(out / "images" / f"{i:03d}", pred, gt, hm, kp, ex.joints2d.numpy())
        elif i < 4:
            write_image(out / "images" / f"{i:03d}_render.png", np.concatenate([_u8(pred), _u8(gt)], axis=1))
        if r["cse"] is not None and ex.cse is not None:
            sel = ex.cse_mask.numpy() & box
            diff = (r["cse"].numpy() - ex.cse.numpy())[:, sel]
            row[Metric.CSE_MSE] = float((diff**2).mean()) if diff.size else None
            if i < 4:
                from ghnerf.base.viz import embedding_colours

                write_image(out / "images" / f"{i:03d}_cse.png", np.concatenate(
                    [embedding_colours(_u8(gt), r["cse"].numpy(), box), embedding_colours(_u8(gt), ex.cse.numpy(),
                                                                                         ex.cse_mask.numpy())], 1))
        rows.append(row)
        if on_view:
            on_view(i + 1, n)
        if volume is not None and (i == n - 1 or examples.items[i + 1][:2] != frame):  # the frame's last view
            volumetric_errors.append(joints_error(volume.joints(), per_frame[ex.key[:2]][0][0].joints3d.numpy()))
            volume = None
    summary = _summarise(rows, preds, gts, lp, areas)
    if "calibration" in summary:
        cal = summary["calibration"]
        write_image(out / "images" / "calibration.png", reliability_diagram(cal["within_pck"], cal["joints"]))
    cse_vals = [r[Metric.CSE_MSE] for r in rows if r.get(Metric.CSE_MSE) is not None]
    if cse_vals:
        summary[Metric.CSE_MSE] = float(np.mean(cse_vals))
    if per_frame:
        summary[Metric.MPJPE_TRIANGULATED] = triangulated_mpjpe(per_frame)
        errors = [e for e in volumetric_errors if e is not None]
        summary[Metric.MPJPE_VOLUMETRIC] = float(np.mean(errors)) if errors else None
    report = {"run": str(run), "checkpoint": str(ck_path), "checkpoint_step": int(ck["step"]),
              "config": cfg.name, "code_version": ck["code_version"], "dataset": str(data), "split": split,
              "views": len(rows), "source_views": examples.source_views,
              "source_views_used": examples.source_view_counts(), "dataset_split": examples.split.record(),
              "pretrained_weights": ck["meta"]["pretrained_weights"],
              "perceptual_loss": ck["meta"].get("perceptual_loss", "not recorded (older checkpoint)"),
              "device": str(device), "cpu": None if cpu is None else cpu.record(), "metrics": summary, "definitions": DEFINITIONS, "per_view": rows,
              "checkpoint_sha256": file_sha256(ck_path), "shards": ck["meta"]["shards"],
              "init_from": ck["meta"].get("init_from"), "metrics_path": str(out / "metrics.json"),
              "report_path": str(out / "report.md"),
              "images": sorted(str(p) for p in (out / "images").glob("*.png"))}
    if teacher_store is not None and preds:
        from ghnerf.eval.teacher_comparison import compare_with_teacher
        from ghnerf.eval.triangulated_teacher import held_out_teacher

        held = held_out_teacher(examples, teacher_store, n)
        report["teacher_comparison"] = compare_with_teacher(np.stack(preds), np.stack(gts), np.array(areas), held,
                                                            teacher_store.entries[0].teacher)
    if teacher_store is not None:
        from ghnerf.eval.disagreement import disagreement_report

        report["disagreement"] = disagreement_report(examples, teacher_store, compared, out) | {
            "teacher": teacher_store.entries[0].teacher}
    write_json(out / "metrics.json", report)
    write_bytes(out / "report.md", markdown_report(report).encode())
    return report


def triangulated_mpjpe(per_frame: dict) -> float | None:
    """MPJPE of the student's 2D keypoints triangulated per frame over its evaluated views, mean over frames."""
    from ghnerf.base.cameras import Camera
    from ghnerf.base.multiview import consistency_report
    from ghnerf.eval.metrics import mpjpe

    errors = []
    for views in per_frame.values():
        if len(views) < 2:
            continue
        cams = []
        for ex, _ in views:
            w2c = ex.batch.tgt_w2c.numpy().astype(np.float64)
            cams.append(Camera(ex.batch.tgt_K.numpy().astype(np.float64), w2c[:3, :3], w2c[:3, 3]))
        rep = consistency_report(cams, np.stack([kp for _, kp in views]))
        e = mpjpe(rep.joints3d, views[0][0].joints3d.numpy().astype(np.float64))
        if np.isfinite(e):
            errors.append(e)
    return float(np.mean(errors)) if errors else None


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _view_pictures(prefix: Path, pred, gt, hm, kp, gt_kp) -> None:
    p8, g8 = _u8(pred), _u8(gt)
    write_image(prefix.with_name(prefix.name + "_render.png"), np.concatenate([p8, g8], axis=1))
    write_image(prefix.with_name(prefix.name + "_heatmaps.png"), heatmap_overlay(p8, hm))
    skel = np.concatenate([draw_skeleton(g8, np.nan_to_num(kp)), draw_skeleton(g8, gt_kp)], axis=1)
    write_image(prefix.with_name(prefix.name + "_skeleton.png"), skel)


def _summarise(rows, preds, gts, lp: LPIPSMetric, areas: list[float]) -> dict:
    def mean(key):
        vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        return float(np.mean(vals)) if vals else None

    render = mean(Metric.RENDER_SECONDS)
    out = {Metric.PSNR: mean(Metric.PSNR), Metric.SSIM: mean(Metric.SSIM),
           Metric.LPIPS: mean(Metric.LPIPS) if lp.fn is not None else f"unavailable: {lp.reason}",
           Metric.RENDER_SECONDS: render, Metric.FPS: 1.0 / render if render else None}
    if preds:
        res = pck(np.stack(preds), np.stack(gts))
        ap = coco_keypoint_ap(coco17(np.stack(preds)), coco17(np.stack(gts)), np.array(areas))
        out.update({Metric.HEATMAP_MSE: mean(Metric.HEATMAP_MSE), Metric.PCK: res.value,
                    "pck_evaluated_joints": res.evaluated, "pck_skipped_views": res.skipped_views,
                    Metric.COCO_AP: ap if np.isfinite(ap) else None,
                    "calibration": confidence_calibration(np.stack(preds), np.stack(gts)).as_dict()})
    return out


def metrics_table(m: dict) -> str:
    """The metrics table (:data:`~ghnerf.eval.metric_names.TABLE_COLUMNS`) as Markdown."""
    headers, cells = table_rows(m)
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), "| " + " | ".join(cells) + " |"])


def lineage_lines(report: dict) -> list[str]:
    """Checkpoint -> shards -> teacher, as Markdown bullets (``ghnerf lineage metrics.json`` goes further)."""
    lines = [f"- checkpoint `{report['checkpoint']}` sha256 `{report.get('checkpoint_sha256', '?')[:16]}..`"
             + (f", fine-tuned from `{report['init_from']}`" if report.get("init_from") else "")]
    shards = report.get("shards") or []
    if not shards:
        lines.append("- targets: the dataset's own 2D joints (no teacher shards)")
    for sh in shards[:8]:
        lines.append(f"- shard `{sh['shard_path']}` in `{sh['store']}` from teacher **{sh['teacher']}** "
                     f"(weights sha256 `{sh['weights_sha256'][:16]}..`)")
    if len(shards) > 8:
        lines.append(f"- ... {len(shards) - 8} more shards (`ghnerf lineage {report.get('metrics_path', 'metrics.json')}`)")
    return lines


def _split_lines(report: dict) -> list[str]:
    """The report's line on what the test views hold out and how many source views they take (none for a
    report without those records)."""
    split, used = report.get("dataset_split"), report.get("source_views_used")
    if not (split and used):
        return []
    held = (f"cameras {', '.join(map(str, split['test_cameras']))} of {', '.join(split['test_subjects'])} "
            "(no test subject)" if split["held_out"] == "cameras" else f"subjects {', '.join(split['test_subjects'])}")
    total = sum(used.values())
    counts = ", ".join(f"{n} ({views} of the split's {total} views)" for n, views in used.items())
    return [f"- held out: {held}; source views per view: {counts}"]


def markdown_report(report: dict) -> str:
    m = report["metrics"]

    lines = [f"# Evaluation of {report['config']} ({report['split']} split)", "",
             f"- run: `{report['run']}`, checkpoint `{report['checkpoint']}` (step {report['checkpoint_step']})",
             f"- code version: `{report['code_version']}`; encoder weights: {report['pretrained_weights']}; "
             f"perceptual loss in training: {report.get('perceptual_loss', 'not recorded')}",
             f"- dataset: `{report['dataset']}`, {report['views']} views, device {report['device']}",
             *_split_lines(report), "",
             metrics_table(m), "", "## Lineage", "", *lineage_lines(report), "", "## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    if isinstance(m[Metric.LPIPS], str):
        lines += ["", f"LPIPS: {m[Metric.LPIPS]}"]
    if report.get("teacher_comparison"):
        from ghnerf.eval.teacher_comparison import markdown_comparison

        lines += ["", *markdown_comparison(report["teacher_comparison"])]
    if report.get("disagreement"):
        from ghnerf.eval.disagreement import markdown_summary

        d = report["disagreement"]
        lines += ["", f"## Student vs teacher {d['teacher']}", "", *markdown_summary(d), "",
                  "Worst views (student | teacher | reference, disputed joints ringed; `disagreement.json` has "
                  "every joint):", ""]
        lines += [f"![{Path(p).name}](images/{Path(p).name})" for p in d["pictures"]]
    if m.get("calibration"):
        lines += ["", "## Confidence calibration", "", "Per confidence bin, the fraction of predicted joints within "
                  "the PCK radius (bar; joints in the bin above it) against the diagonal of a calibrated model:", "",
                  "![calibration](images/calibration.png)"]
    lines += ["", "## Pictures", "", "Rendered | ground truth, heatmaps over the render, predicted | ground-truth "
              "skeleton:", ""]
    lines += [f"![{p}](images/{p})" for p in ("000_render.png", "000_heatmaps.png", "000_skeleton.png")]
    return "\n".join(lines) + "\n"


def evaluate_spec(spec: EvaluateSpec, out: str | Path | None = None, warn: Callable[[str], None] = lambda line: None,
                  on_view: Callable[[int, int], None] | None = None) -> dict:
    """:func:`evaluate_run` as ``spec`` asks (what ``ghnerf evaluate`` and the ``evaluate`` flow run): the CSE and
    pose teachers' shards opened from ``spec.targets``; shards left out under ``allow_partial_targets`` are warned
    about."""
    from storage.targets import TargetStore

    def store(teacher: str | None) -> TargetStore | None:
        if not teacher:
            return None
        opened = TargetStore(spec.targets, teacher, storage_options=spec.storage_options,
                             allow_partial=spec.allow_partial_targets)
        for line in opened.left_out:
            warn(f"left out (--allow-partial-targets): {line}")
        return opened

    return evaluate_run(spec.run, spec.data, spec.split, spec.max_views, out=out, checkpoint=spec.checkpoint,
                        cse_store=store(spec.cse_teacher), source_views=spec.source_views,
                        teacher_store=store(spec.teacher), warn=warn, on_view=on_view)
