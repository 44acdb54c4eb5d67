"""Training speed of the student on the CPU through the real loop (``ghnerf.student.train.train``), issue 22.

For each preset: steps per second of this code and, with ``--baseline DIR`` (a checkout of an earlier commit,
e.g. ``git worktree add DIR 73ce45e``), of that code, each run in its own process, old and new alternating
(the machine may be shared: only ratios measured side by side mean much); where a step's time goes (stages
timed by wrapping the loop's functions, the outermost stage owning nested calls; "other" is the rest of the
loop); and the loss after ``--loss-steps`` steps for each ``--seeds`` seed, old and new (the loss at the last
step, one example's, and its mean over the last 50 steps). The data and settings are the student benchmark's
(``benchmarks/student_quality.py``: synthetic ZJU-layout subjects, 8 frames x 8 cameras at 128^2, image scale
1, 256 + 1024 rays, Adam 1e-3 halved at half the steps, heatmaps from the dataset's own joints). With one
thread, CPU seconds per step measure the code's work however loaded the machine is.

    .venv/bin/python benchmarks/train_speed.py --baseline DIR [--precisions auto float32 --steps 14 --repeats 3
        --threads 1 --loss-steps 500 --seeds 0 1 --subjects 34 --workdir W]

``--keypoint-cache warm`` lets an untimed run see every image first, so the frozen pose encoder (MediaPipe) reads
its keypoints from the on-disk cache as a retraining does; ``distilled`` runs ``ghnerf distill --teacher mediapipe``
over the data first (untimed), as the product's flow does before any training, whose MediaPipe runs leave every
photograph's keypoints there (default ``cold``: each run starts with an empty cache, as a training on frames the
teacher never saw; the baseline has no such cache either way). ``--image-scale S`` generates the data at
``size / S`` and trains at scale S (``ghnerf train``'s default is 0.5), so the training still runs at ``size``. ``--precisions`` runs this code once per
``TrainConfig.cpu_precision`` given (``new-auto``, ``new-float32``, ...) in the same alternating rounds, so their
ratio is measured side by side. ``--repeats 0`` skips the speed runs and
``--loss-steps 0`` the loss runs; results of the other part, already in ``--out``, are kept, and loss runs already
in ``--workdir`` for the same library commit are read back.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

REPO = Path(__file__).resolve().parents[1]
# stage -> (module, attribute path) of the functions timed; a name the code does not have is skipped
STAGES = {
    "examples (load, decode, heatmaps)": [("ghnerf.student.data", "ExampleSet.example"),
                                          ("ghnerf.student.example_cache", "ExampleCache.example")],
    "rays and targets": [("ghnerf.student.train", "level_maps"), ("ghnerf.student.train", "sample_rays"),
                         ("ghnerf.student.train", "patch_rays"), ("ghnerf.student.train", "gather_targets")],
    "encoders (FPN + human)": [("ghnerf.student.model", "GHNeRF.encode")],
    "cost volumes (build + 3D U-Net)": [("ghnerf.student.model", "GHNeRF._level_volume")],
    "per-ray (sampling, NeRF, heads, compositing)": [("ghnerf.student.model", "GHNeRF._render_level")],
    "losses": [("ghnerf.student.train", "student_loss")],
    "backward": [("torch", "Tensor.backward")],
    "optimiser (clip, Adam, zero_grad)": [("torch.nn.utils", "clip_grad_norm_"), ("torch.optim", "Adam.step"),
                                          ("torch.optim", "Adam.zero_grad")],
    "checkpoints + validation": [("ghnerf.student.train", "save_checkpoint"),
                                 ("ghnerf.student.train", "validation_image")],
}


# ------------------------------------------------------------------------------------------------ worker side

def _install_timers(acc: dict) -> None:
    """Wrap every function of :data:`STAGES`; time goes to the outermost active stage."""
    import functools
    import importlib

    active = []

    def wrap(stage, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            if active:
                return fn(*a, **k)
            active.append(stage)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[stage] = acc.get(stage, 0.0) + time.perf_counter() - t0
                active.pop()
        return timed

    for stage, targets in STAGES.items():
        for module, path in targets:
            try:
                owner = importlib.import_module(module)
            except ModuleNotFoundError:  # older code
                continue
            *parents, name = path.split(".")
            for p in parents:
                owner = getattr(owner, p, None)
            if owner is not None and hasattr(owner, name):
                setattr(owner, name, wrap(stage, getattr(owner, name)))


def _setup(spec: dict):
    import torch

    torch.set_num_threads(spec["threads"])
    from ghnerf.student.config import PRESETS, preset
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train_config import TrainConfig

    name = spec["preset"]
    cfg = preset(name, pretrained="none" if "resnet" in name else PRESETS[name].pretrained)
    scale = spec.get("image_scale", 1.0)
    examples = ExampleSet(spec["data"], "train", image_scale=scale, heatmaps="dataset",
                          source_targets=cfg.source_heatmap_head)
    steps = spec["steps"]
    precision = {}  # code from before TrainConfig.cpu_precision trains in float32 and has no such field
    if spec.get("cpu_precision") and "cpu_precision" in TrainConfig.model_fields:
        precision = {"cpu_precision": spec["cpu_precision"]}
    tcfg = TrainConfig(steps=steps, lr=1e-3, lr_halving_steps=max(steps // 2, 1), rays=(256, 1024), image_scale=scale,
                       checkpoint_every=steps, val_every=steps, seed=spec["seed"], **precision)
    return cfg, tcfg, examples


def _precision_used(out: str) -> str:
    """The autocast a run trained in, from its run.json ("float32" for code that does not record it)."""
    record = json.loads((Path(out) / "run.json").read_text()).get("precision")
    return record["autocast"] if record else "float32"


def worker_speed(spec: dict) -> dict:
    """Steps/s between the first and the last step, and seconds per step of each stage over those steps."""
    acc: dict[str, float] = {}
    _install_timers(acc)
    from ghnerf.student.train import train

    cfg, tcfg, examples = _setup(spec)
    marks: list[tuple[float, float]] = []

    def on_step(step, record):
        marks.append((time.perf_counter(), time.process_time()))
        if step == 1:
            acc.clear()
        if step == tcfg.steps:
            window.update(acc)

    window: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out:
        train(cfg, tcfg, examples, out, on_step=on_step, log=lambda s: None)
        precision = _precision_used(out)
    end_extras = acc.get("checkpoints + validation", 0.0) - window.get("checkpoints + validation", 0.0)
    n = tcfg.steps - 1
    seconds = marks[-1][0] - marks[0][0]
    stages = {k: window.get(k, 0.0) / n for k in STAGES}
    stages["other"] = seconds / n - sum(stages.values())
    return {"steps_per_second": n / seconds, "cpu_seconds_per_step": (marks[-1][1] - marks[0][1]) / n,
            "stage_seconds_per_step": stages, "precision": precision,
            "final_checkpoint_and_validation_s": end_extras}


def worker_distill(spec: dict) -> dict:
    """The MediaPipe teacher over the whole dataset, as ``ghnerf distill`` runs it (its keypoints land in the cache)."""
    from ghnerf.app.distill import DistillConfig, distill

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as targets:
        report = distill(spec["data"], targets, DistillConfig(teacher="mediapipe"))
    return {"seconds": time.perf_counter() - t0, "shards": len(report.results)}


def worker_loss(spec: dict) -> dict:
    from ghnerf.student.train import train

    cfg, tcfg, examples = _setup(spec)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        state = train(cfg, tcfg, examples, out, log=lambda s: None)
        precision = _precision_used(out)
    losses = [r["loss"] for r in state.history]
    return {"loss_last": losses[-1], "loss_mean_last_50": sum(losses[-50:]) / len(losses[-50:]),
            "psnr_mean_last_50": sum(r["psnr"] for r in state.history[-50:]) / len(losses[-50:]),
            "seconds": time.perf_counter() - t0, "precision": precision}


WORKERS = {"speed": worker_speed, "loss": worker_loss, "distill": worker_distill}


# ------------------------------------------------------------------------------------------------- main side

def run_job(spec: dict, root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=str(spec["threads"]))
    with tempfile.TemporaryDirectory() as empty:  # the frozen teacher's keypoint cache: empty unless given
        env["GHNERF_CACHE_DIR"] = spec.get("keypoint_cache") or empty
        return _run(spec, root, env)


def _run(spec: dict, root: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True, cwd=root)
    if proc.returncode:
        raise SystemExit(f"job {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def code_version(root: Path) -> str:
    """The last commit of a checkout that changed the library, with ``+changes`` when the files differ from it."""
    def git(*a):
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True).stdout.strip()

    lib = ("ghnerf", "teachers", "storage")
    return git("log", "-1", "--format=%h", "--", *lib) + ("+changes" if git("status", "--porcelain", *lib) else "")


def loss_run(spec: dict, root: Path, work: Path) -> dict:
    """A loss run, read back from ``work`` when this code version already made it."""
    variant = f"-{spec['cpu_precision']}" if spec.get("cpu_precision") else ""
    path = work / "loss" / (f"{spec['preset']}-seed{spec['seed']}-{spec['steps']}steps{variant}-"
                            f"{code_version(root)}.json")
    if path.is_file() and "+changes" not in path.name:
        return json.loads(path.read_text())
    result = {**run_job(spec, root), "code": code_version(root)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # a job of run_job, maybe in another checkout's code: nothing else is imported
        spec = json.loads(sys.argv[2])
        print(json.dumps(WORKERS[spec["kind"]](spec)))
        return
    from ghnerf.student.train_config import CpuPrecision  # light (no torch)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="checkout of the code to compare with")
    ap.add_argument("--presets", nargs="+", default=["ghnerf-resnet18", "ghnerf-mediapipe"])
    ap.add_argument("--steps", type=int, default=30, help="steps per speed run (the first is not timed)")
    ap.add_argument("--repeats", type=int, default=2, help="speed runs per code and preset (median; 0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loss-steps", type=int, default=500, help="0: no loss runs")
    ap.add_argument("--loss-presets", nargs="+", default=["ghnerf-resnet18"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--subjects", type=int, default=34)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the synthetic data and the loss runs here (a "
                    "rerun reads back the loss runs of the same commits)")
    ap.add_argument("--precisions", nargs="+", default=[None], choices=get_args(CpuPrecision),
                    help="TrainConfig.cpu_precision of this code's runs, one variant each, in the same rounds "
                         "(default: its TrainConfig default; the baseline runs as it is)")
    ap.add_argument("--keypoint-cache", choices=["cold", "warm", "distilled"], default="cold",
                    help="the frozen pose encoder's keypoint cache (ghnerf.base.keypoint_cache): cold, every run starts "
                         "with an empty one (frames the teacher never saw); warm, an untimed run has seen every image "
                         "first (a retraining, a fine-tuning, a later benchmark row); distilled, the MediaPipe teacher "
                         "has distilled the data first (the product's flow: distill, then train)")
    ap.add_argument("--image-scale", type=float, default=1.0,
                    help="train at this image scale on data generated at size / scale (ghnerf train's default: 0.5)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_speed.json")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from ghnerf.synth.generate import SynthConfig, generate_dataset

    work = args.workdir or Path(tempfile.mkdtemp())
    stored = round(args.size / args.image_scale)
    data = work / f"data-{args.subjects}x8x8-{stored}"
    if not data.exists():
        generate_dataset(SynthConfig(layout="zju", subjects=args.subjects, frames=8, cameras=8, size=stored,
                                     distortion=False), data)
    # variant -> (checkout, cpu_precision): this code once per --precisions entry, then the baseline
    codes = {("new" if p is None else f"new-{p}"): (REPO, p) for p in args.precisions}
    codes |= {"old": (args.baseline.resolve(), None)} if args.baseline else {}
    base = {"data": str(data), "threads": args.threads, "seed": 0, "image_scale": args.image_scale}
    results: dict = {"benchmark": "train_speed", "size": args.size, "threads": args.threads,
                     "subjects": args.subjects, "image_scale": args.image_scale, "speed": {}, "loss": {}}
    if args.out.is_file():  # a run of only some parts keeps the others' results of the same settings
        kept = json.loads(args.out.read_text())
        if all(kept.get(k, 1.0 if k == "image_scale" else None) == results[k]
               for k in ("size", "threads", "subjects", "image_scale")):
            results["speed"], results["loss"] = kept["speed"], kept["loss"]
    results["keypoint_cache"] = args.keypoint_cache
    for preset_name in args.presets if args.repeats else []:
        runs: dict[str, list[dict]] = {c: [] for c in codes}
        caches = {c: (work / "keypoint-cache" / f"{preset_name}-{c}-{args.keypoint_cache}-{stored}"
                      if args.keypoint_cache != "cold" else None) for c in codes}
        for code, (root, precision) in codes.items():  # untimed: the cache filled first
            if caches[code] is None:
                continue
            if args.keypoint_cache == "warm":  # a run that sees every image of the rounds
                run_job({**base, "kind": "speed", "preset": preset_name, "steps": args.steps,
                         "cpu_precision": precision, "keypoint_cache": str(caches[code])}, root)
            elif code != "old":  # the distillation; the baseline's encoder has no cache to find it in
                distilled = run_job({**base, "kind": "distill", "keypoint_cache": str(caches[code])}, REPO)
                results.setdefault("distillation_seconds", {})[f"{preset_name}/{code}"] = distilled["seconds"]
        for _ in range(args.repeats):
            for code, (root, precision) in codes.items():  # alternating
                runs[code].append(run_job({**base, "kind": "speed", "preset": preset_name, "steps": args.steps,
                                           "cpu_precision": precision,
                                           "keypoint_cache": caches[code] and str(caches[code])}, root))
        for code, rs in runs.items():
            results["speed"][f"{preset_name}/{code}"] = {"code": code_version(codes[code][0]),
                "precision": rs[0]["precision"], "keypoint_cache": args.keypoint_cache,
                "image_scale": args.image_scale,
                "steps_per_second": _median([r["steps_per_second"] for r in rs]),
                "runs": [r["steps_per_second"] for r in rs],
                "cpu_seconds_per_step": _median([r["cpu_seconds_per_step"] for r in rs]),
                "stage_seconds_per_step": {k: _median([r["stage_seconds_per_step"][k] for r in rs])
                                           for k in rs[0]["stage_seconds_per_step"]}}
    for preset_name in args.loss_presets if args.loss_steps else []:
        for seed in args.seeds:
            for code, (root, precision) in codes.items():
                results["loss"][f"{preset_name}/seed{seed}/{code}"] = loss_run(
                    {**base, "kind": "loss", "preset": preset_name, "steps": args.loss_steps, "seed": seed,
                     "cpu_precision": precision}, root, work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))

    console = Console()
    speed = results["speed"]
    table = Table(title=f"training at {args.size}² (image scale {args.image_scale:g} of {stored}²), {args.threads} "
                        f"CPU thread(s), keypoint cache {args.keypoint_cache}, median of {args.repeats} runs of "
                        f"{args.steps} steps (the first not timed)")
    table.add_column("")
    for key in speed:
        table.add_column(key.replace("/", " "), justify="right")
    rows = [("steps/s (wall)", lambda r: f"{r['steps_per_second']:.3f}"),
            ("CPU s per step", lambda r: f"{r['cpu_seconds_per_step']:.3f}")]
    rows += [(f"{k}, ms", lambda r, k=k: f"{1000 * r['stage_seconds_per_step'][k]:.0f}") for k in (*STAGES, "other")]
    for label, cell in rows:
        table.add_row(label, *[cell(r) for r in speed.values()])
    table.add_row("steps/s new / old", *[
        f"{r['steps_per_second'] / speed[k.split('/')[0] + '/old']['steps_per_second']:.2f}"
        if "/new" in k and k.split("/")[0] + "/old" in speed else "" for k, r in speed.items()])
    console.print(table)
    if results["loss"]:
        lt = Table(title=f"loss after {args.loss_steps} steps")
        for col in ("run", "loss at last step", "mean of last 50", "PSNR mean of last 50", "seconds"):
            lt.add_column(col)
        for key, r in results["loss"].items():
            lt.add_row(key, f"{r['loss_last']:.4f}", f"{r['loss_mean_last_50']:.4f}",
                       f"{r['psnr_mean_last_50']:.2f}", f"{r['seconds']:.0f}")
        console.print(lt)
    print(markdown(results))


def markdown(results: dict) -> str:
    """The speed and loss tables as Markdown (docs/training-speed.md). A stage's CPU time is its share of the
    step's wall time times the step's CPU time (one thread: the process's CPU time is its work, however loaded
    the machine is)."""
    speed, lines = results["speed"], []
    keys = list(speed)
    lines += ["| stage | " + " | ".join(f"{k.replace('/', ', ')} ({speed[k].get('code', '')}, "
                                        f"{speed[k].get('precision', 'float32')})" for k in keys) + " |",
              "|---" * (len(keys) + 1) + "|"]
    for stage in (*STAGES, "other"):
        cells = []
        for k in keys:
            r = speed[k]
            share = r["stage_seconds_per_step"][stage] * r["steps_per_second"]
            cells.append(f"{100 * share:.0f} % ({1000 * share * r['cpu_seconds_per_step']:.0f} ms)")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **CPU seconds per step** | " + " | ".join(f"**{speed[k]['cpu_seconds_per_step']:.3f}**"
                                                         for k in keys) + " |")
    lines.append("| steps/s (wall) | " + " | ".join(f"{speed[k]['steps_per_second']:.3f}" for k in keys) + " |")
    if results["loss"]:
        lines += ["", "| run | code | precision | loss at the last step | mean of the last 50 | PSNR, mean of the "
                  "last 50 |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {r.get('code', '')} | {r.get('precision', 'float32')} | {r['loss_last']:.4f} | "
                  f"{r['loss_mean_last_50']:.4f} | {r['psnr_mean_last_50']:.2f} |" for k, r in results["loss"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
