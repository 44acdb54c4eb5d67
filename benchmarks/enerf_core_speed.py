"""The ENeRF core at 512² against the original ENeRF as its ZJU-MoCap evaluation config sets it, on a quiet machine
and with CPU-bound processes beside it, in one run.

Every measurement runs in its own process (so peak memory is its own), on the same synthetic frame (ZJU layout,
512², 2 source views), with 2 CPU threads, over the body box (ENeRF's ``mask_at_box``) and the full frame:

* ours, through the evaluation path (``render_full_view``: the CPU policy of ``ghnerf.student.cpu_policy``, each
  level's volume built once, per-ray work in chunks): with ENeRF's settings (2 fine samples, the original's
  numbers to float rounding), with GHNeRF's settings (preset ``enerf``: 4 fine samples), ``ghnerf-resnet18`` (+
  ResNet-18 human encoder and heatmap head) and the default preset of ``ghnerf train`` (read from ``TrainSpec``;
  since session 11 ``ghnerf-mediapipe-hypotheses``: + MediaPipe on each source view, the triangulated joint hypotheses, ray
  evidence and the heatmap head); with ENeRF's settings
  also as one model call over the same rays (the two must agree; the largest difference is printed);
* the original (``--original``): ``lib/networks/enerf/network_human.Network`` configured by its own
  ``configs/enerf/zjumocap_eval.yaml`` over ``dtu_pretrain.yaml`` (read from the checkout, printed), i.e.
  ``render_if [False, True]``: the coarse level only guides the fine one, as the original evaluates ZJU-MoCap;
* ``--pairs`` interleaved rounds (ours, original, ours, ...), each process one warm-up call then ``--repeats``
  timed calls; ratios are of the minimums. ``--loads 0 2``: the rounds run once per entry with that many
  CPU-bound processes (Python busy loops the benchmark starts, bounded in time, stops itself) on the machine;
* per-stage seconds (image features, coarse volume, fine volume, fine per-ray work; first round, first load)
  and peak RSS growth; training steps per second of ``ghnerf-resnet18`` at 128² and 512² (``--skip-train``).

    .venv/bin/python benchmarks/enerf_core_speed.py --original O --original-deps D [--baseline B [--baseline-cases ...]]
        [--pairs 3] [--repeats 1] [--loads 0 2] [--skip-train] [--original-wait-policy PASSIVE]
    .venv/bin/python benchmarks/enerf_core_speed.py --from-json benchmarks/results/enerf_core_speed.json

The tables (``benchmarks/enerf_core_speed_report.py``) are printed (and as Markdown, the README's) and written with
every raw time, the CPU policy ours ran with, the original's config and the load average before and after each
load to ``--out``; ``--from-json`` prints the tables of such a file again.

``--original``: a checkout of zju3dv/ENeRF (``lib/`` is imported from it; ``kornia`` must be importable, e.g.
``pip install --target D --no-deps kornia kornia_rs`` and ``--original-deps D``). ``--baseline``: a checkout
of this repository at another commit (``git worktree add B 86bee4f``), whose code runs ``--baseline-cases``
(default ``ours-enerf``; each a case that checkout has) in every round of the first load, interleaved with the
rest, with the CPU policy of that checkout when it has one. Nothing of
either is copied here: they are imported from where they are. The original runs with OpenMP's default wait
policy (as its users run it) unless ``--original-wait-policy PASSIVE``.
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
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from enerf_core_speed_report import FRAMES, markdown_table, print_table

REPO = Path(__file__).resolve().parents[1]
THREADS = 2
ORIGINAL_CONFIG = "configs/enerf/zjumocap_eval.yaml"
QUICK = "<quick>"  # the preset train_spec.QUICK_CONFIG names (:func:`preset_of`)
# case -> (label, preset (None: `ghnerf train`'s default; QUICK: the quick recipe; :func:`preset_of`), ENeRF's
# settings)
OURS = {
    "ours-enerf": ("ours, evaluation path, ENeRF settings (2 fine samples)", "enerf", True),
    "ours-preset": ("ours, evaluation path, preset enerf (GHNeRF settings: 4 fine samples)", "enerf", False),
    "ours-resnet18": ("ours, evaluation path, ghnerf-resnet18 (+ ResNet-18 encoder, heatmap head)",
                      "ghnerf-resnet18", False),
    "ours-default": ("ours, evaluation path, {preset} (train's default)", None, False),
    "ours-quick": ("ours, evaluation path, {preset} (the quick recipe: the main job's)", QUICK, False),
    "ours-fast": ("ours, evaluation path, ghnerf-mediapipe-fast (the quick recipe without ray evidence, 2 fine "
                  "samples)", "ghnerf-mediapipe-fast", False),
}
BUSY_LOOP = "import sys, time\nend = float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


# ----------------------------------------------------------------------------------------------- worker side

def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, repeats: int) -> tuple[list[float], object]:
    """One warm-up call, then ``repeats`` timed calls: (their seconds, the last output)."""
    out = fn()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return seconds, out


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


def preset_of(case: str) -> str:
    """The preset a case runs; for ``ours-default`` the one ``ghnerf train`` trains without ``--config``, for
    ``ours-quick`` the main job's (read here, in this checkout, so a ``--baseline`` checkout never needs to have
    them)."""
    name = OURS[case][1]
    if name is None or name == QUICK:
        from ghnerf.student import train_spec  # light: no torch

        name = train_spec.TrainSpec.model_fields["config"].default if name is None else train_spec.QUICK_CONFIG
    return name


def label_of(case: str) -> str:
    return OURS[case][0].format(preset=preset_of(case))


def _config(case: str, baseline: bool):
    from ghnerf.student.config import preset

    cfg = preset(preset_of(case)).without_pretrained_load()  # random-init trainable encoders; a frozen one as bundled
    if not OURS[case][2]:  # not with ENeRF's settings
        return cfg
    if baseline and not hasattr(cfg, "with_enerf_settings"):  # a checkout from before with_enerf_settings
        return replace(cfg, levels=(cfg.levels[0], replace(cfg.levels[-1], samples_per_ray=2)), source_views=2)
    return cfg.with_enerf_settings()


def worker_ours(spec: dict) -> dict:
    import torch

    from ghnerf.student.inference import render_full_view
    from ghnerf.student.model import GHNeRF
    from ghnerf.student.views import level_maps

    baseline = spec["kind"] == "baseline"
    device = torch.device("cpu")
    cpu_policy = _cpu_policy_module()
    policy = None if cpu_policy is None else cpu_policy.apply_inference_policy(device).record()
    torch.manual_seed(0)
    model = GHNeRF(_config(spec["case"], baseline)).eval()
    ex = _example(spec["data"], spec["full"])
    rss0 = _rss_mb()
    seconds, r = _timed(lambda: render_full_view(model, ex, device), spec["repeats"])
    result = {"seconds": seconds, "peak_rss_growth_mb": _peak_mb() - rss0, "rays": int(r["box"].sum()),
              "cpu_policy": policy, "threads": torch.get_num_threads()}
    if spec.get("one_call"):  # our evaluation path against one model call over the same rays
        uv = torch.nonzero(level_maps(ex, r["box"].shape)["box"]).flip(-1).float()
        with torch.no_grad():
            result["one_call_seconds"], levels = _timed(lambda: model(ex.batch, [uv.new_zeros((0, 2)), uv]),
                                                        spec["repeats"])
        x, y = uv[:, 0].long(), uv[:, 1].long()
        result["eval_path_vs_call_max_abs_rgb"] = float((r["rgb"][y, x] - levels[-1].rgb).abs().max())
    if spec.get("stages"):  # a last pass with each stage wrapped in a timer
        clock = StageClock()
        model.encode = clock.wrap("image features", model.encode)
        level_volume = model._level_volume
        model._level_volume = lambda i, *a: clock.wrap(f"volume {i}", level_volume)(i, *a)
        model._render_level = clock.wrap("fine per-ray work", model._render_level)
        render_full_view(model, ex, device)
        result["stages"] = clock.seconds
    return result


def original_config(root: str):
    """The original's own config, as its ``lib/config/config.py`` builds it for ``ORIGINAL_CONFIG``: the ``enerf``
    node of the parent config (``parent_cfg``, dtu_pretrain.yaml) with the eval config's ``enerf`` node merged
    over it (yacs, from the checkout)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("enerf_yacs", os.path.join(root, "lib/config/yacs.py"))
    yacs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(yacs)
    with open(os.path.join(root, ORIGINAL_CONFIG)) as f:
        child = yacs.load_cfg(f)
    with open(os.path.join(root, child.parent_cfg)) as f:
        parent = yacs.load_cfg(f)
    enerf = parent.enerf
    enerf.merge_from_other_cfg(child.enerf)
    cfg = yacs.CfgNode()
    cfg.fix_random = False
    cfg.enerf = enerf
    return cfg, {"files": [child.parent_cfg, ORIGINAL_CONFIG], "test_input_views": enerf.test_input_views,
                 "chunk_size": enerf.chunk_size, "cas_config": {k: list(v) if isinstance(v, (list, tuple)) else v
                                                                 for k, v in enerf.cas_config.items()}}


def _load_original(root: str):
    """ENeRF's ``network_human`` from a checkout, with a stand-in for its argv-parsing ``lib.config`` that holds
    :func:`original_config`."""
    sys.path.insert(0, root)
    cfg, _ = original_config(root)
    for name in ("lib", "lib.networks", "lib.datasets", "lib.utils"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, *name.split("."))]
        sys.modules[name] = pkg
    conf = types.ModuleType("lib.config")
    conf.cfg = cfg
    sys.modules["lib.config"] = conf
    from lib.datasets import enerf_utils
    from lib.networks.enerf import network_human, utils

    return network_human, utils, enerf_utils, cfg


def worker_original(spec: dict) -> dict:
    import numpy as np
    import torch

    network_human, utils, enerf_utils, cfg = _load_original(spec["root"])
    torch.manual_seed(0)
    net = network_human.Network().eval()
    ex = _example(spec["data"], False)
    b = ex.batch
    img = ex.image.numpy()
    H, W = img.shape[:2]
    batch = {"src_inps": (b.src_images * 2 - 1)[None], "src_exts": b.src_w2c[None], "src_ixts": b.src_K[None],
             "tar_ext": b.tgt_w2c[None], "tar_ixt": b.tgt_K[None], "near_far": b.near_far[None]}
    for lv in range(cfg.enerf.cas_config.num):
        rays, _, _ = enerf_utils.build_rays(img, b.tgt_w2c.numpy(), b.tgt_K.numpy(), np.ones((H, W), np.uint8), lv,
                                            "test")
        batch[f"rays_{lv}"] = torch.from_numpy(rays)[None]
    if not spec["full"]:
        batch["mask_at_box"] = ex.box[None].to(torch.uint8)
    rss0 = _rss_mb()
    with torch.no_grad():
        seconds, _ = _timed(lambda: net(batch), spec["repeats"])
    result = {"seconds": seconds, "peak_rss_growth_mb": _peak_mb() - rss0, "threads": torch.get_num_threads(),
              "rays": int(ex.box.sum()) if not spec["full"] else H * W,
              "wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}
    if spec.get("stages"):
        clock = StageClock()
        net.forward_feat = clock.wrap("image features", net.forward_feat)
        build = utils.build_feature_volume
        utils.build_feature_volume = lambda *a, **k: clock.wrap(f"volume {k['level']}", build)(*a, **k)
        for i in range(cfg.enerf.cas_config.num):  # the cost regularisation belongs to its level's volume
            reg = getattr(net, f"cost_reg_{i}")
            reg.forward = clock.wrap(f"volume {i}", reg.forward)
        batchify = net.batchify_rays
        net.batchify_rays = lambda **k: clock.wrap("fine per-ray work" if k["level"] == 1 else "coarse per-ray work",
                                                   batchify)(**k)
        with torch.no_grad():
            net(batch)
        result["stages"] = clock.seconds
    return result


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


def _cpu_policy_module():
    """``ghnerf.student.cpu_policy`` of the checkout on the path, or None for a ``--baseline`` from before it (it
    imports no torch)."""
    try:
        from ghnerf.student import cpu_policy
    except ImportError:
        return None
    return cpu_policy


def worker(spec: dict) -> dict:
    cpu_policy = _cpu_policy_module() if spec["kind"] in ("ours", "baseline") else None
    if cpu_policy is not None:
        cpu_policy.prepare_process()  # as the ghnerf command does, before torch loads OpenMP
    import torch

    torch.set_num_threads(THREADS)
    if spec["kind"] == "original":
        return worker_original(spec)
    if spec["kind"] == "train":
        return worker_train(spec["data"], spec["steps"])
    return worker_ours(spec)


# ------------------------------------------------------------------------------------------------- main side

def run_job(spec: dict, pythonpath: list[str], wait_policy: str | None = None) -> dict:
    """``spec`` in a fresh process; the environment's OpenMP wait policy is removed (the library chooses its own)
    unless ``wait_policy`` is given."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GHNERF_CPU_POLICY")}
    env |= {"PYTHONPATH": os.pathsep.join(pythonpath), "OMP_NUM_THREADS": str(THREADS)}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"job {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextmanager
def background_load(processes: int, seconds: float):
    """``processes`` CPU-bound Python loops beside the measurements, each ending by itself after ``seconds`` and
    stopped (by its own pid) on leaving."""
    end = time.time() + seconds
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(end)]) for _ in range(processes)]
    try:
        if procs:
            time.sleep(1.0)  # let them reach the loop
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _commit(checkout: Path) -> str:
    """The short commit a checkout is at."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=3, help="interleaved rounds (ours, original) per load")
    ap.add_argument("--repeats", type=int, default=1, help="timed calls per process (after one warm-up call)")
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 2],
                    help="CPU-bound processes beside the measurements, one set of rounds per entry")
    ap.add_argument("--load-seconds", type=float, default=1200.0, help="longest a background process runs")
    ap.add_argument("--cases", nargs="+", default=list(OURS), choices=list(OURS))
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--baseline", type=Path, help="checkout of this repository at the commit to compare with")
    ap.add_argument("--baseline-cases", nargs="+", default=["ours-enerf"], choices=list(OURS),
                    help="the cases the --baseline checkout runs")
    ap.add_argument("--original", type=Path, help="checkout of zju3dv/ENeRF")
    ap.add_argument("--original-deps", type=Path, help="extra import path for the original (kornia)")
    ap.add_argument("--original-wait-policy", choices=["PASSIVE", "ACTIVE"],
                    help="OMP_WAIT_POLICY for the original (default: unset, as its users run it)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "enerf_core_speed.json")
    ap.add_argument("--from-json", type=Path, help="print the tables of an earlier run's JSON, measure nothing")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from rich.console import Console

    if args.from_json:
        results = json.loads(args.from_json.read_text())
        print_table(Console(width=200), results)
        print(markdown_table(results))
        return

    from ghnerf.synth.generate import SynthConfig, generate_dataset

    console = Console(width=200)
    ours_path = [str(REPO)]
    results: dict = {"benchmark": "enerf_core_speed", "image_size": args.size, "threads": THREADS,
                     "source_views": 2, "pairs": args.pairs, "repeats": args.repeats, "loads": args.loads,
                     "commit": _commit(REPO),
                     "cases": {c: label_of(c) for c in args.cases}, "render": {}, "train": {}, "load_average": {}}
    if args.baseline:
        results["baseline"] = {"checkout": str(args.baseline), "commit": _commit(args.baseline),
                               "cases": {c: label_of(c) for c in args.baseline_cases}}
    if args.original:
        _, results["original_config"] = original_config(str(args.original.resolve()))
        results["original_wait_policy"] = args.original_wait_policy or "unset"
        console.print(f"original: {args.original} with {' over '.join(reversed(results['original_config']['files']))}"
                      f": {json.dumps(results['original_config']['cas_config'])}, "
                      f"test_input_views {results['original_config']['test_input_views']}, "
                      f"OMP_WAIT_POLICY {results['original_wait_policy']}", markup=False)
    orig_path = ([str(args.original_deps.resolve())] if args.original_deps else []) + [str(REPO)]
    with tempfile.TemporaryDirectory() as tmp:
        data = {}
        for size in sorted({args.size} | (set() if args.skip_train else {128, 512})):
            data[size] = str(Path(tmp) / f"d{size}")
            generate_dataset(SynthConfig(layout="zju", subjects=1, frames=1, cameras=8, size=size,
                                         distortion=False), Path(data[size]))
        for load in args.loads:
            runs = results["render"].setdefault(str(load), {})
            before = os.getloadavg()
            with background_load(load, args.load_seconds):
                for pair in range(args.pairs):
                    first = pair == 0 and load == args.loads[0]
                    for frame in FRAMES:
                        base = {"data": data[args.size], "full": frame == "full frame", "repeats": args.repeats,
                                "stages": first}
                        jobs = [(c, {"kind": "ours", "case": c, "one_call": c == "ours-enerf"}, ours_path, None)
                                for c in args.cases]
                        if args.original:
                            jobs.insert(1, ("original", {"kind": "original", "root": str(args.original.resolve())},
                                            orig_path, args.original_wait_policy))
                        if args.baseline and load == args.loads[0]:
                            jobs += [(f"baseline:{c}", {"kind": "baseline", "case": c}, [str(args.baseline.resolve())],
                                      None) for c in args.baseline_cases]
                        for name, spec, path, policy in jobs:
                            console.print(f"load {load}, round {pair + 1}/{args.pairs}, {frame}: {name}")
                            r = run_job(base | spec, path, policy)
                            runs.setdefault(f"{name}/{frame}", []).append(r)
            results["load_average"][str(load)] = {"before": before, "after": os.getloadavg()}
        if not args.skip_train:
            for size in (128, 512):
                console.print(f"train {size}")
                results["train"][f"ours/{size}"] = run_job(
                    {"kind": "train", "data": data[size], "steps": args.train_steps}, ours_path)
    print_table(console, results)
    print(markdown_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
