"""Student quality on held-out synthetic subjects, in the paper's table format (one run, same budget).

Trains, with the same number of steps and rays, on the synthetic ZJU-layout set:
``enerf`` (image quality reference), ``enerf-heatmap`` (the paper's baseline),
``ghnerf-resnet18`` on the dataset's own 2D joints, and ``ghnerf-resnet18`` distilled
from the ``mediapipe`` teacher's shards; evaluates all on the held-out subjects, and
puts the teacher's own PCK on the same views next to the students'. Encoders are
randomly initialised unless ImageNet weights are in the local cache (the table says
which). Goals (issue 6): ghnerf-resnet18 PCK above enerf-heatmap, PSNR within 0.5 dB
of enerf; the distilled student above its teacher.

    .venv/bin/python benchmarks/student_quality.py [--steps 500 --subjects 6 --frames 4 --size 128]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ghnerf.errors import WeightsNotFoundError
from ghnerf.eval.evaluate import evaluate_run
from ghnerf.eval.metrics import pck
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.encoders import ResNetEncoder
from ghnerf.student.train import TrainConfig, train
from ghnerf.synth.generate import SynthConfig, generate_dataset
from storage.targets import TargetStore
from teachers.base import TeacherInput
from teachers.distill import DistillConfig, distill
from teachers.registry import build_teacher


def teacher_pck(data: Path, image_scale: float, max_views: int) -> float:
    """The mediapipe teacher's PCK@0.2 on the held-out views the students are evaluated on."""
    teacher = build_teacher("mediapipe")
    ex_set = ExampleSet(data, "test", image_scale=image_scale)
    preds, gts = [], []
    for i in range(min(max_views, len(ex_set))):
        ex = ex_set.example(i)
        img = np.round(ex.image.numpy() * 255).astype(np.uint8)
        from ghnerf.cameras import Camera

        cam = Camera(ex.batch.tgt_K.numpy(), np.eye(3), np.zeros(3), height=img.shape[0], width=img.shape[1])
        out = teacher.predict([TeacherInput("v", img, cam)])[0]
        preds.append(out.keypoints)
        gts.append(ex.joints2d.numpy())
    return pck(np.stack(preds), np.stack(gts)).value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--image-scale", type=float, default=1.0)
    ap.add_argument("--max-views", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/student_quality.json"))
    args = ap.parse_args()
    try:
        ResNetEncoder("resnet18", "imagenet")
        pretrained = "imagenet"
    except WeightsNotFoundError:
        pretrained = "none"
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data, store = Path(tmp) / "data", Path(tmp) / "targets"
        generate_dataset(SynthConfig(layout="zju", subjects=args.subjects, frames=args.frames, cameras=8,
                                     size=args.size, distortion=False), data)
        distill(data, store, DistillConfig(teacher="mediapipe"))
        tcfg = TrainConfig(steps=args.steps, rays=(256, 1024), image_scale=args.image_scale,
                           checkpoint_every=args.steps, val_every=args.steps)
        runs = [("enerf", "dataset joints", None), ("enerf-heatmap", "dataset joints", None),
                ("ghnerf-resnet18", "dataset joints", None), ("ghnerf-resnet18", "mediapipe shards", "mediapipe")]
        for name, source, teacher in runs:
            cfg = preset(name, pretrained=pretrained if "resnet" in name else "imagenet")
            hm_store = TargetStore(store, teacher) if teacher else None
            heat = "none" if not cfg.heatmap_head else ("store" if hm_store else "dataset")
            ex = ExampleSet(data, "train", image_scale=args.image_scale, heatmaps=heat, heatmap_store=hm_store)
            run = Path(tmp) / f"{name}-{teacher or 'gt'}"
            t0 = time.perf_counter()
            train(cfg, tcfg, ex, run, log=lambda s: None)
            seconds = time.perf_counter() - t0
            rep = evaluate_run(run, data, "test", args.max_views)
            m = rep["metrics"]
            rows.append({"model": name, "targets": source, "encoder_weights": rep["pretrained_weights"],
                         "psnr": m["psnr"], "ssim": m["ssim"],
                         "lpips": m["lpips"] if isinstance(m["lpips"], float) else None,
                         "mse": m.get("heatmap_mse"), "pck": m.get("pck"),
                         "mpjpe_m": m.get("mpjpe_triangulated_m"), "mpjpe_volumetric_m": m.get("mpjpe_volumetric_m"),
                         "train_seconds": seconds})
        rows.append({"model": "mediapipe (teacher)", "targets": "-", "encoder_weights": "pretrained (bundled)",
                     "psnr": None, "ssim": None, "lpips": None, "mse": None,
                     "pck": teacher_pck(data, args.image_scale, args.max_views), "mpjpe_m": None,
                     "mpjpe_volumetric_m": None, "train_seconds": None})
    table = Table(title=f"student quality: {args.subjects} synthetic subjects ({args.frames} frames, 8 cameras, "
                        f"{args.size}²), held-out subjects, {args.steps} steps each, CPU")
    for col in ("model", "targets", "PSNR", "SSIM", "LPIPS", "MSE", "PCK@0.2", "MPJPE m (volumetric)",
                "MPJPE m (triangulated)"):
        table.add_column(col)

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        table.add_row(r["model"], r["targets"], f(r["psnr"], ".2f"), f(r["ssim"], ".3f"),
                      f(r["lpips"], ".3f") if r["lpips"] is not None else "n/a", f(r["mse"], ".4f"),
                      f(r["pck"], ".3f"), f(r["mpjpe_volumetric_m"], ".3f"), f(r["mpjpe_m"], ".3f"))
    Console().print(table)
    print(f"encoders: {pretrained} (random init when 'none'); LPIPS n/a without local VGG16 weights; "
          f"total {time.perf_counter() - t_start:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "student_quality", "args": vars(args) | {"out": str(args.out)},
                                    "encoder_weights": pretrained, "rows": rows}, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
