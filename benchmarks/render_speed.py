"""Render speed of the student variants on the same rays, in one run (CPU here; CUDA when present).

Rows: ENeRF only (no heads), ENeRF + heatmap head (paper baseline), GHNeRF-ResNet18 and
GHNeRF-DINO (random-init encoders: speed does not depend on weights), each rendering T
target views that share their source views, the encoders run once per source set and
cached (goals: ResNet18 / ENeRF <= 1.3, DINO / ENeRF <= 2; the paper measured 2.8 and
7.6); and depth-guided 8 + 4 samples per ray against one level of 64 uniform samples
(goal >= 5x faster).

    .venv/bin/python benchmarks/render_speed.py [--size 256 --targets 4 --repeats 3]
"""

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ghnerf.student.config import COARSE, preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.views import level_maps
from ghnerf.synth.generate import SynthConfig, generate_dataset


def time_render(model: GHNeRF, examples, rays_per_view, repeats: int) -> float:
    """Seconds to render all targets (encoder once per source set, reused for every target)."""
    model.eval()
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            enc = model.encode(examples[0].batch)
            for ex, uv in zip(examples, rays_per_view):
                rays = [uv.new_zeros((0, 2))] * (len(model.cfg.levels) - 1) + [uv]
                model(ex.batch, rays, encoding=enc)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--variants", default="enerf,enerf-heatmap,ghnerf-resnet18,ghnerf-dino,enerf-uniform-64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/render_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(SynthConfig(layout="zju", subjects=2, frames=1, cameras=8, size=args.size,
                                     distortion=False), Path(tmp))
        ds = ExampleSet(tmp, "train", image_scale=1.0, heatmaps="none")
        # targets sharing one source set: the same frame seen from the training cameras, sources fixed
        first = ds.example(0)
        examples = []
        for i in range(args.targets):
            ex = ds.example(i % len(ds))
            examples.append(replace(ex, batch=replace(ex.batch, src_images=first.batch.src_images,
                                                      src_K=first.batch.src_K, src_w2c=first.batch.src_w2c)))
        rays = [torch.nonzero(level_maps(ex, ex.image.shape[:2])["box"]).flip(-1).float() for ex in examples]
        n_rays = sum(len(r) for r in rays)
        time_render(GHNeRF(preset("enerf", pretrained="none")), examples[:1], rays[:1], 1)  # warm-up
        rows = {}
        for name in args.variants.split(","):
            if name == "enerf-uniform-64":
                cfg = preset("enerf", pretrained="none")
                cfg = replace(cfg, levels=(replace(COARSE, samples_per_ray=64, render_scale=1.0),))
            else:
                cfg = preset(name, pretrained="none")
            rows[name] = time_render(GHNeRF(cfg), examples, rays, args.repeats)
    base = rows["enerf"]
    result = {"benchmark": "render_speed", "device": "cuda" if torch.cuda.is_available() else "cpu",
              "image_size": args.size, "targets": args.targets, "rays": n_rays, "seconds": rows,
              "ratios_over_enerf": {k: v / base for k, v in rows.items()}}
    table = Table(title=f"render speed: {args.targets} views x {n_rays // args.targets} rays @ {args.size}^2, "
                        f"{result['device']}")
    for col in ("variant", "seconds", "x ENeRF", "goal"):
        table.add_column(col)
    goals = {"ghnerf-resnet18": "<= 1.3 (paper 2.8)", "ghnerf-dino": "<= 2 (paper 7.6)",
             "enerf-uniform-64": ">= 5 (depth-guided faster)"}
    for name, sec in rows.items():
        table.add_row(name, f"{sec:.3f}", f"{sec / base:.2f}", goals.get(name, ""))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
