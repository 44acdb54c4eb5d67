"""Evaluate a trained run on held-out views: metrics.json, a Markdown report, and pictures.

For every test view (test cameras of test subjects, sources from the training
cameras): the fine level is rendered inside the projected body box; PSNR / SSIM
inside the box (ENeRF's ``mask_at_box``), LPIPS when the VGG weights are in the
local cache (otherwise reported as unavailable, never computed with a random
backbone), heatmap MSE, 2D keypoints the OpenPose way and PCK@0.2 and COCO keypoint
AP against the dataset's 2D joints, network time per view.
"""

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ghnerf.base.errors import WeightsNotFoundError
from ghnerf.eval.metrics import (PCK_ALPHA, coco17, coco_keypoint_ap, confidence_calibration, heatmap_mse,
                                 masked_psnr, masked_ssim, openpose_keypoints, pck)
from ghnerf.base.fileio import file_sha256, write_bytes, write_image, write_json
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.train import load_checkpoint, pick_device, render_full_view
from ghnerf.base.viz import draw_skeleton, heatmap_overlay, reliability_diagram

DEFINITIONS = {
    "psnr": "PSNR (dB) over the pixels inside the projected body box, images in [0, 1] (ENeRF mask_at_box)",
    "ssim": "scikit-image SSIM on the bounding rectangle of the body box",
    "lpips": "LPIPS-VGG on the body-box rectangle; 'unavailable' when vgg16-397923af.pth is not in the torch hub cache",
    "heatmap_mse": "mean squared error of the rendered heatmaps against Gaussian targets at the dataset's 2D joints "
                   "(sigma 7 px at full resolution), inside the body box, joints missing in the dataset excluded",
    "pck": f"PCK@{PCK_ALPHA}: keypoints from the rendered heatmaps the OpenPose way (Gaussian filter sigma 3 px, "
           "threshold 0.1, connected regions, peak per region) within 0.2 x the ground-truth LShoulder-RHip "
           "distance; ground-truth joints with confidence 0 excluded; views without both torso joints skipped",
    "coco_ap": "COCO keypoint AP (pycocotools COCOeval, OKS 0.50:0.95) of the same keypoints, COCO-17 joints of "
               "BODY_25, one person per view, area = the view's foreground mask; a view without a labelled joint is "
               "left out (ghnerf.eval.metrics.coco_keypoint_ap)",
    "calibration": "per confidence bin (10 bins over [0, 1]) of the predicted joints PCK evaluates: how many, and the "
                   "fraction within the PCK radius (ghnerf.eval.metrics.confidence_calibration)",
    "mpjpe_volumetric_m": "mean per-joint error (metres) of 3D joints read from a volumetric heatmap: the heatmap "
                          "head queried on a 4 cm grid over the body's vertex box (+10 cm), weighted by occupancy "
                          "1 - exp(-sigma) and averaged over the frame's evaluated views; per joint the peak, "
                          "refined to sub-voxel precision (ghnerf.eval.metrics.volume_peaks)",
    "mpjpe_triangulated_m": "mean per-joint error (metres) of 3D joints triangulated robustly from the student's 2D "
                            "keypoints in the evaluated views of each frame (ghnerf.base.multiview), against the "
                            "dataset's 3D joints; frames with fewer than 2 evaluated views are skipped",
    "cse_mse": "mean squared error of the rendered 16-d surface embedding against the CSE teacher's targets, over "
               "the target's foreground inside the body box (only with --targets and --cse-teacher)",
    "render_seconds": "wall time of the network forward pass for one view (fine level, all box pixels)",
    "fps": "1 / render_seconds",
}


class EvalOptions(BaseModel):
    """The user's evaluation options, checked before anything is read."""

    model_config = ConfigDict(extra="forbid")

    max_views: int | None = Field(None, ge=1, description="evaluate at most N views")
    source_views: int | None = Field(None, description="source views per target (default: as trained)")

    @field_validator("source_views")
    @classmethod
    def _source_views(cls, n: int | None) -> int | None:
        from ghnerf.student.config import source_views_problem

        if n is not None and source_views_problem(n):
            raise ValueError(source_views_problem(n))
        return n


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
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck


def evaluate_run(run: str | Path, data: str | Path, split: str = "test", max_views: int | None = None,
                 out: str | Path | None = None, checkpoint: str | Path | None = None, cse_store=None,
                 source_views: int | None = None, teacher_store=None) -> dict:
    """Evaluate ``run`` (its latest checkpoint unless ``checkpoint``); writes metrics.json and report.md.

    Args:
        cse_store: a :class:`storage.targets.TargetStore` of a CSE teacher, for the CSE metric.
        teacher_store: a TargetStore of a pose teacher: where the student and the teacher disagree on the
            views, and which one the evidence supports (disagreement.json, :mod:`ghnerf.eval.disagreement`).
        source_views: source views per target (default: the number the run was trained with; the network
            pools over any number, as ENeRF's test_input_views may differ from its training views).
    """
    run = Path(run)
    ck_path = Path(checkpoint) if checkpoint else run / "checkpoints" / "latest.pt"
    out = Path(out) if out else run / f"eval_{split}"
    device = pick_device("auto")
    model, ck = load_run_model(ck_path, device)
    cfg, tcfg = ck["student_config"], ck["train_config"]
    views = replace(cfg, source_views=source_views).source_views if source_views is not None else cfg.source_views
    examples = ExampleSet(data, split, views, tcfg.image_scale, "dataset" if cfg.heatmap_head else "none",
                          cse_store=cse_store if cfg.cse_head else None)
    lp = LPIPSMetric()
    n = len(examples) if max_views is None else min(max_views, len(examples))
    rows, preds, gts, areas = [], [], [], []
    per_frame: dict[tuple, list] = {}
    compared = []  # (item index, student keypoints, view image) for the disagreement report
    for i in range(n):
        ex = examples.example(i)
        t0 = time.perf_counter()
        r = render_full_view(model, ex, device)
        seconds = time.perf_counter() - t0
        box = r["box"].numpy()
        pred = r["rgb"].clamp(0, 1).numpy()
        gt = ex.image.numpy()
        ys, xs = np.nonzero(box)
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        row = {"subject": ex.key[0], "frame_id": ex.key[1], "camera": ex.key[2], "psnr": masked_psnr(pred, gt, box),
               "ssim": masked_ssim(pred, gt, box), "lpips": lp(pred[crop], gt[crop]), "render_seconds": seconds}
        if r["heatmaps"] is not None and ex.heatmaps is not None:
            hm = r["heatmaps"].numpy()
            row["heatmap_mse"] = heatmap_mse(hm, ex.heatmaps.numpy(), ex.joint_valid.numpy(), box)
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
            if i < 4:
                _view_pictures(out / "images" / f"{i:03d}", pred, gt, hm, kp, ex.joints2d.numpy())
        elif i < 4:
            write_image(out / "images" / f"{i:03d}_render.png", np.concatenate([_u8(pred), _u8(gt)], axis=1))
        if r["cse"] is not None and ex.cse is not None:
            sel = ex.cse_mask.numpy() & box
            diff = (r["cse"].numpy() - ex.cse.numpy())[:, sel]
            row["cse_mse"] = float((diff**2).mean()) if diff.size else None
            if i < 4:
                from ghnerf.base.viz import embedding_colours

                write_image(out / "images" / f"{i:03d}_cse.png", np.concatenate(
                    [embedding_colours(_u8(gt), r["cse"].numpy(), box), embedding_colours(_u8(gt), ex.cse.numpy(),
                                                                                         ex.cse_mask.numpy())], 1))
        rows.append(row)
    summary = _summarise(rows, preds, gts, lp, areas)
    if "calibration" in summary:
        cal = summary["calibration"]
        write_image(out / "images" / "calibration.png", reliability_diagram(cal["within_pck"], cal["joints"]))
    cse_vals = [r["cse_mse"] for r in rows if r.get("cse_mse") is not None]
    if cse_vals:
        summary["cse_mse"] = float(np.mean(cse_vals))
    if per_frame:
        summary["mpjpe_triangulated_m"] = triangulated_mpjpe(per_frame)
        summary["mpjpe_volumetric_m"] = volumetric_mpjpe(model, per_frame, device)
    report = {"run": str(run), "checkpoint": str(ck_path), "checkpoint_step": int(ck["step"]),
              "config": cfg.name, "code_version": ck["code_version"], "dataset": str(data), "split": split,
              "views": len(rows), "source_views": examples.source_views,
              "pretrained_weights": ck["meta"]["pretrained_weights"],
              "perceptual_loss": ck["meta"].get("perceptual_loss", "not recorded (older checkpoint)"),
              "device": str(device), "metrics": summary, "definitions": DEFINITIONS, "per_view": rows,
              "checkpoint_sha256": file_sha256(ck_path), "shards": ck["meta"]["shards"],
              "init_from": ck["meta"].get("init_from"), "metrics_path": str(out / "metrics.json"),
              "report_path": str(out / "report.md"),
              "images": sorted(str(p) for p in (out / "images").glob("*.png"))}
    if teacher_store is not None:
        from ghnerf.eval.disagreement import disagreement_report

        report["disagreement"] = disagreement_report(examples, teacher_store, compared, out) | {
            "teacher": teacher_store.entries[0].teacher}
    write_json(out / "metrics.json", report)
    write_bytes(out / "report.md", markdown_report(report).encode())
    return report


VOXEL_M = 0.04
BOX_MARGIN_M = 0.1


def volumetric_joints(model: GHNeRF, examples: list, device: torch.device) -> np.ndarray | None:
    """(25, 4) 3D joints (x, y, z, score) from the occupancy-weighted heatmap volume of one frame's views."""
    from ghnerf.eval.metrics import volume_peaks

    bounds = examples[0].bounds
    if bounds is None or model.heatmap_head is None:
        return None
    lo, hi = bounds[0] - BOX_MARGIN_M, bounds[1] + BOX_MARGIN_M
    axes = [np.arange(a, b + 1e-9, VOXEL_M) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    pts = torch.from_numpy(grid.reshape(-1, 3)).float().to(device)
    total = torch.zeros(len(pts), model.cfg.num_joints, device=device)
    for ex in examples:
        occ, heat = model.query_points(ex.batch.to(device), pts)
        total += occ[:, None] * heat
    volume = (total / len(examples)).T.reshape(model.cfg.num_joints, *grid.shape[:3]).cpu().numpy()
    return volume_peaks(volume, lo, VOXEL_M)


def volumetric_mpjpe(model: GHNeRF, per_frame: dict, device: torch.device) -> float | None:
    from ghnerf.eval.metrics import mpjpe

    errors = []
    for views in per_frame.values():
        joints = volumetric_joints(model, [ex for ex, _ in views], device)
        if joints is not None:
            e = mpjpe(joints[:, :3], views[0][0].joints3d.numpy().astype(np.float64))
            if np.isfinite(e):
                errors.append(e)
    return float(np.mean(errors)) if errors else None


def triangulated_mpjpe(per_frame: dict) -> float | None:
    """MPJPE of the student's 2D keypoints triangulated per frame over its evaluated views."""
    from ghnerf.base.cameras import Camera
    from ghnerf.eval.metrics import mpjpe
    from ghnerf.base.multiview import consistency_report

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

    render = mean("render_seconds")
    out = {"psnr": mean("psnr"), "ssim": mean("ssim"),
           "lpips": mean("lpips") if lp.fn is not None else f"unavailable: {lp.reason}",
           "render_seconds": render, "fps": 1.0 / render if render else None}
    if preds:
        res = pck(np.stack(preds), np.stack(gts))
        ap = coco_keypoint_ap(coco17(np.stack(preds)), coco17(np.stack(gts)), np.array(areas))
        out.update({"heatmap_mse": mean("heatmap_mse"), "pck": res.value, "pck_evaluated_joints": res.evaluated,
                    "pck_skipped_views": res.skipped_views, "coco_ap": ap if np.isfinite(ap) else None,
                    "calibration": confidence_calibration(np.stack(preds), np.stack(gts)).as_dict()})
    return out


def _fmt(v, spec=".4f") -> str:
    return format(v, spec) if isinstance(v, float) else ("–" if v is None else str(v))


def metrics_table(m: dict) -> str:
    """The paper's table columns (PSNR / SSIM / LPIPS / MSE / PCK / MPJPE) plus COCO AP and FPS, as Markdown."""
    lp = _fmt(m["lpips"]) if isinstance(m.get("lpips"), float) else "unavailable"
    return "\n".join([
        "| PSNR | SSIM | LPIPS | MSE | PCK@0.2 | COCO AP | MPJPE vol. (m) | MPJPE tri. (m) | FPS |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {_fmt(m.get('psnr'), '.2f')} | {_fmt(m.get('ssim'), '.3f')} | {lp} | {_fmt(m.get('heatmap_mse'))} | "
        f"{_fmt(m.get('pck'), '.3f')} | {_fmt(m.get('coco_ap'), '.3f')} | {_fmt(m.get('mpjpe_volumetric_m'), '.3f')} | "
        f"{_fmt(m.get('mpjpe_triangulated_m'), '.3f')} | {_fmt(m.get('fps'), '.2f')} |"])


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


def markdown_report(report: dict) -> str:
    m = report["metrics"]

    lines = [f"# Evaluation of {report['config']} ({report['split']} split)", "",
             f"- run: `{report['run']}`, checkpoint `{report['checkpoint']}` (step {report['checkpoint_step']})",
             f"- code version: `{report['code_version']}`; encoder weights: {report['pretrained_weights']}; "
             f"perceptual loss in training: {report.get('perceptual_loss', 'not recorded')}",
             f"- dataset: `{report['dataset']}`, {report['views']} views, device {report['device']}", "",
             metrics_table(m), "", "## Lineage", "", *lineage_lines(report), "", "## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    if isinstance(m["lpips"], str):
        lines += ["", f"LPIPS: {m['lpips']}"]
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
