"""Synthetic dataset generation speed: the issue's 4 subjects x 10 frames x 8 cameras x 256^2 set.

Measures, in one run, the full generator (render + write) against rendering
alone, and prints the share of time spent writing files.

    .venv/bin/python benchmarks/synth_speed.py [--out benchmarks/results/synth_speed.json]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ghnerf.synth.body import SurfaceSampling
from ghnerf.synth.generate import SynthConfig, build_subject, generate_dataset, iter_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/synth_speed.json"))
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    rows = []
    for layout in ("zju", "renderpeople"):
        cfg = SynthConfig(layout=layout, subjects=args.subjects, frames=args.frames, cameras=args.cameras,
                          size=args.size)
        t0 = time.perf_counter()
        sampling = SurfaceSampling()
        for i in range(cfg.subjects):
            for _ in iter_frames(build_subject(cfg, i), sampling, cfg.frames):
                pass
        render_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate_dataset(cfg, tmp)
            total_s = time.perf_counter() - t0
            size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 1e6
        images = cfg.subjects * cfg.frames * cfg.cameras
        rows.append({"layout": layout, "images": images, "total_s": round(total_s, 2),
                     "render_only_s": round(render_s, 2), "images_per_s": round(images / total_s, 1),
                     "write_share": round(max(0.0, 1 - render_s / total_s), 3), "dataset_mb": round(size_mb, 1)})
    table = Table(title=f"synthetic generation, {args.subjects}x{args.frames}x{args.cameras} @ {args.size}^2")
    for key in rows[0]:
        table.add_column(key)
    for r in rows:
        table.add_row(*map(str, r.values()))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "synth_speed", "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
