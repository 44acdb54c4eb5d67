"""The ENeRF core at 512², in one run: our evaluation path against one model call, the code before this
change (a checkout given with --baseline) and the original ENeRF (a checkout given with --original).

Every measurement runs in its own process (so peak memory is its own), on the same synthetic frame
(ZJU layout, 512², 2 source views, ENeRF's settings: 2 fine samples per ray), with 2 CPU threads:

* full frame: every pixel of the fine level; masked: only the projected body box (ENeRF ``mask_at_box``);
* ours: through the evaluation path (``render_full_view``: volumes built once, per-ray work in 4,096-ray
  chunks) and as one model call over the same rays (the two must agree; the largest difference is printed);
* per-stage seconds (image features, coarse volume, fine volume, fine per-ray work) and peak RSS growth;
* training steps per second of ``ghnerf-resnet18`` at 128² and 512² (ours and the baseline).

    .venv/bin/python benchmarks/enerf_core_speed.py [--baseline DIR] [--original DIR --original-deps DIR]

``--baseline``: a checkout of this repository at another commit (e.g. ``git worktree add /tmp/base 745fa20``).
``--original``: a checkout of zju3dv/ENeRF (``lib/`` is imported from it; ``kornia`` must be importable, e.g.
``pip install --target DIR --no-deps kornia kornia_rs`` and ``--original-deps DIR``). Nothing of either is
copied here: they are imported from where they are.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREADS = 2


# ----------------------------------------------------------------------------------------------- worker side

def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


class StageClock:
    """Seconds per named stage, accumulated by wrapping callables."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name, fn):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed


def _example(data: str, full: bool):
    import torch

    from ghnerf.student.data import ExampleSet

    ex = ExampleSet(data, "train", 2, image_scale=1.0, heatmaps="none").example(0)
    return replace(ex, box=torch.ones_like(ex.box)) if full else ex


def _enerf_config(ours: bool):
    from ghnerf.student.config import preset

    cfg = preset("enerf", pretrained="none")
    if ours:
        return cfg.with_enerf_settings()
    return replace(cfg, levels=(cfg.levels[0], replace(cfg.levels[-1], samples_per_ray=2)), source_views=2)


def worker_ours(data: str, full: bool, repeats: int, baseline: bool, preset_name: str | None) -> dict:
    import torch

    from ghnerf.student.config import preset
    from ghnerf.student.inference import render_full_view
    from ghnerf.student.model import GHNeRF
    from ghnerf.student.views import level_maps

    torch.manual_seed(0)
    cfg = preset(preset_name, pretrained="none") if preset_name else _enerf_config(not baseline)
    model = GHNeRF(cfg).eval()
    ex = _example(data, full)
    device = torch.device("cpu")
    clock = StageClock()
    rss0 = _rss_mb()
    seconds, r = _timed(lambda: render_full_view(model, ex, device), repeats)
    peak = _peak_mb() - rss0
    result = {"seconds": seconds, "peak_rss_growth_mb": peak, "rays": int(r["box"].sum())}
    if not baseline and not preset_name:  # our evaluation path against one model call over the same rays
        uv = torch.nonzero(level_maps(ex, r["box"].shape)["box"]).flip(-1).float()
        with torch.no_grad():
            result["one_call_seconds"], levels = _timed(lambda: model(ex.batch, [uv.new_zeros((0, 2)), uv]), repeats)
        out = levels[-1]
        x, y = uv[:, 0].long(), uv[:, 1].long()
        result["eval_path_vs_call_max_abs_rgb"] = float((r["rgb"][y, x] - out.rgb).abs().max())
    # stages: a last pass with each stage wrapped in a timer
    model.encode = clock.wrap("image features", model.encode)
    level_volume = model._level_volume
    model._level_volume = lambda i, *a: clock.wrap(f"volume {i}", level_volume)(i, *a)
    model._render_level = clock.wrap("fine per-ray work", model._render_level)
    render_full_view(model, ex, device)
    result["stages"] = clock.seconds
    return result


def _load_original(root: str):
    """ENeRF's ``network_human.Network`` from a checkout, with a stand-in for its argv-parsing ``lib.config``:
    the settings of configs/enerf/zjumocap_eval.yaml over dtu_pretrain.yaml."""
    import importlib.util

    sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("enerf_yacs", os.path.join(root, "lib/config/yacs.py"))
    yacs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(yacs)
    cfg = yacs.CfgNode()
    cfg.fix_random = False
    cfg.enerf = yacs.CfgNode()
    cfg.enerf.viewdir_agg, cfg.enerf.chunk_size, cfg.enerf.white_bkgd = True, 1000000, False
    cfg.enerf.sample_on_mask = True
    cc = cfg.enerf.cas_config = yacs.CfgNode()
    cc.num, cc.depth_inv, cc.volume_scale, cc.volume_planes = 2, [True, False], [0.125, 0.5], [32, 8]
    cc.im_feat_scale, cc.im_ibr_scale, cc.render_scale = [0.25, 0.5], [0.25, 1.0], [0.25, 1.0]
    cc.render_im_feat_level, cc.nerf_model_feat_ch, cc.render_if = [0, 2], [32, 8], [True, True]
    cc.num_samples, cc.num_rays, cc.num_patchs = [8, 2], [4096, 16384], [0, 4]
    cc.train_img, cc.patch_size, cc.loss_weight = [False, False], [-1, 64], [0.1, 1.0]
    for name in ("lib", "lib.networks", "lib.datasets", "lib.utils"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, *name.split("."))]
        sys.modules[name] = pkg
    conf = types.ModuleType("lib.config")
    conf.cfg = cfg
    sys.modules["lib.config"] = conf
    from lib.datasets import enerf_utils
    from lib.networks.enerf import network_human, utils

    return network_human, utils, enerf_utils


def worker_original(data: str, full: bool, repeats: int, root: str) -> dict:
    import numpy as np
    import torch

    network_human, utils, enerf_utils = _load_original(root)
    torch.manual_seed(0)
    net = network_human.Network().eval()
    ex = _example(data, False)
    b = ex.batch
    img = ex.image.numpy()
    H, W = img.shape[:2]
    batch = {"src_inps": (b.src_images * 2 - 1)[None], "src_exts": b.src_w2c[None], "src_ixts": b.src_K[None],
             "tar_ext": b.tgt_w2c[None], "tar_ixt": b.tgt_K[None], "near_far": b.near_far[None]}
    for lv in range(2):
        rays, _, _ = enerf_utils.build_rays(img, b.tgt_w2c.numpy(), b.tgt_K.numpy(), np.ones((H, W), np.uint8), lv,
                                            "test")
        batch[f"rays_{lv}"] = torch.from_numpy(rays)[None]
    if not full:
        batch["mask_at_box"] = ex.box[None].to(torch.uint8)
    rss0 = _rss_mb()
    with torch.no_grad():
        seconds, _ = _timed(lambda: net(batch), repeats)
    peak = _peak_mb() - rss0
    clock = StageClock()
    net.forward_feat = clock.wrap("image features", net.forward_feat)
    build = utils.build_feature_volume
    utils.build_feature_volume = lambda *a, **k: clock.wrap(f"volume {k['level']}", build)(*a, **k)
    for i in range(2):  # the cost regularisation belongs to its level's volume
        reg = getattr(net, f"cost_reg_{i}")
        reg.forward = clock.wrap(f"volume {i}", reg.forward)
    batchify = net.batchify_rays
    net.batchify_rays = lambda **k: clock.wrap("fine per-ray work" if k["level"] == 1 else "coarse per-ray work",
                                               batchify)(**k)
    with torch.no_grad():
        net(batch)
    return {"seconds": seconds, "peak_rss_growth_mb": peak, "stages": clock.seconds,
            "rays": int(ex.box.sum()) if not full else H * W}


def worker_train(data: str, steps: int) -> dict:
    import torch

    from ghnerf.student.config import preset
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import _example_loss
    from ghnerf.student.train_config import TrainConfig

    torch.manual_seed(0)
    from ghnerf.student.model import GHNeRF

    cfg = preset("ghnerf-resnet18", pretrained="none")
    model = GHNeRF(cfg).train()
    ex = ExampleSet(data, "train", cfg.source_views, image_scale=1.0, heatmaps="dataset").example(0)
    tcfg = TrainConfig(steps=steps)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    gen = torch.Generator().manual_seed(0)
    device = torch.device("cpu")

    def step():
        loss = _example_loss(model, ex, cfg, tcfg, None, gen, device)[0]
        opt.zero_grad()
        loss.total.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {"steps_per_second": steps / (time.perf_counter() - t0)}


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    kind = spec["kind"]
    if kind == "original":
        return worker_original(spec["data"], spec["full"], spec["repeats"], spec["root"])
    if kind == "train":
        return worker_train(spec["data"], spec["steps"])
    return worker_ours(spec["data"], spec["full"], spec["repeats"], kind == "baseline", spec.get("preset"))


# ------------------------------------------------------------------------------------------------- main side

def run_job(spec: dict, pythonpath: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath), OMP_NUM_THREADS=str(THREADS))
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"job {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="checkout of this repository at the commit to compare with")
    ap.add_argument("--original", type=Path, help="checkout of zju3dv/ENeRF")
    ap.add_argument("--original-deps", type=Path, help="extra import path for the original (kornia)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "enerf_core_speed.json")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from rich.console import Console
    from rich.table import Table

    from ghnerf.synth.generate import SynthConfig, generate_dataset

    console = Console(width=200)
    impls = {"ours": [str(REPO)]}
    if args.baseline:
        impls["baseline"] = [str(args.baseline.resolve())]
    if args.original:
        impls["original"] = [str(args.original_deps.resolve())] if args.original_deps else []
        impls["original"] += [str(REPO)]
    results: dict = {"benchmark": "enerf_core_speed", "image_size": args.size, "threads": THREADS,
                     "source_views": 2, "fine_samples": 2, "render": {}, "train": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = {}
        for size in sorted({args.size, 128, 512}):
            data[size] = str(Path(tmp) / f"d{size}")
            generate_dataset(SynthConfig(layout="zju", subjects=1, frames=1, cameras=8, size=size,
                                         distortion=False), Path(data[size]))
        for frame in ("full", "masked"):
            for name, path in impls.items():
                spec = {"kind": name, "data": data[args.size], "full": frame == "full", "repeats": args.repeats}
                if name == "original":
                    spec["root"] = str(args.original.resolve())
                console.print(f"render {frame} frame: {name}")
                results["render"][f"{name}/{frame}"] = run_job(spec, impls[name])
        console.print("render full frame: ours, GHNeRF default preset (4 fine samples)")
        results["render"]["ours-4-samples/full"] = run_job(
            {"kind": "ours", "data": data[args.size], "full": True, "repeats": 1, "preset": "enerf"}, impls["ours"])
        for size in (128, 512):
            for name in [n for n in impls if n != "original"]:
                console.print(f"train {size}: {name}")
                results["train"][f"{name}/{size}"] = run_job(
                    {"kind": "train", "data": data[size], "steps": args.train_steps}, impls[name])
    render = results["render"]
    table = Table(title=f"ENeRF core at {args.size}², 2 source views, 2 fine samples, {THREADS} CPU threads")
    for col in ("implementation", "frame", "rays", "seconds", "/ original", "/ baseline", "features", "coarse vol",
                "fine vol", "fine rays", "peak RSS +MB"):
        table.add_column(col)
    for key, r in render.items():
        name, frame = key.split("/")
        st = r.get("stages", {})
        ref = render.get(f"original/{frame}")
        base = render.get(f"baseline/{frame}")
        table.add_row(name, frame, str(r["rays"]), f"{r['seconds']:.2f}",
                      f"{r['seconds'] / ref['seconds']:.2f}" if ref else "-",
                      f"{r['seconds'] / base['seconds']:.2f}" if base else "-",
                      *(f"{st.get(k, 0):.2f}" for k in ("image features", "volume 0", "volume 1", "fine per-ray work")),
                      f"{r['peak_rss_growth_mb']:.0f}")
    console.print(table)
    for frame in ("full", "masked"):
        ours = render[f"ours/{frame}"]
        console.print(f"{frame}: evaluation path {ours['seconds']:.2f} s, one model call {ours['one_call_seconds']:.2f} s"
                      f", largest RGB difference {ours['eval_path_vs_call_max_abs_rgb']:.2e}")
    for key, r in results["train"].items():
        console.print(f"train {key}: {r['steps_per_second']:.3f} steps/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
