"""Student training: ray sampling inside the body, Adam with step decay, checkpoints that resume exactly.

A checkpoint (``RUN/checkpoints/step_XXXXXXX.pt`` and ``latest.pt``, written
atomically) holds only tensors and plain values, so it loads with
``torch.load(weights_only=True)``: model and optimiser state, step, the random
generator state (rays and examples are drawn from it, so a resumed run continues
exactly as an uninterrupted one would), the student and training configs, the
code version, and every shard the targets came from (for ``ghnerf lineage``).
"""

import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ghnerf.base.errors import ConfigError
from ghnerf.base.fileio import write_json
from ghnerf.base.hold import hold_point
from ghnerf.student.checkpoints import load_checkpoint, resume_point, save_checkpoint
from ghnerf.student.config import StudentConfig
from ghnerf.student.data import Example, ExampleSet
from ghnerf.student.distributed import (
    mean_over_ranks,
    params_without_grad,
    setup,
    teardown,
)
from ghnerf.student.example_cache import ExampleCache
from ghnerf.student.inference import validation_image
from ghnerf.student.losses import PerceptualLoss, student_loss
from ghnerf.student.model import GHNeRF
from ghnerf.student.precision import TrainingPrecision, training_precision
from ghnerf.student.pretrain_2d_cache import pretrain_or_take
from ghnerf.student.state_check import load_checked
from ghnerf.student.train_config import OWN_POSE_NETWORK_2D_STEPS, TrainConfig
from ghnerf.student.views import gather_targets, level_maps
from ghnerf.student.weights import resolve_auto


def sample_rays(maps: dict, n: int, in_mask: float, gen: torch.Generator, near_joints: float = 0.0) -> torch.Tensor:
    """(n, 2) pixels: ``near_joints`` of them where a target heatmap is >= 0.1 (when the example has heatmaps),
    ``in_mask`` of the rest inside the mask, the others inside the body box."""
    def pick(region: torch.Tensor, k: int) -> torch.Tensor:
        idx = torch.nonzero(region)
        if len(idx) == 0:
            idx = torch.nonzero(torch.ones_like(region))
        sel = idx[torch.randint(len(idx), (k,), generator=gen)]
        return sel.flip(-1).float()

    parts = []
    if near_joints > 0 and "heatmaps" in maps:
        j = int(round(n * near_joints))
        parts.append(pick(maps["heatmaps"].amax(0) >= 0.1, j))
        n -= j
    k = int(round(n * in_mask))
    return torch.cat([*parts, pick(maps["mask"], k), pick(maps["box"] | maps["mask"], n - k)])


def draw_source_views(mix: dict[int, float], gen: torch.Generator) -> int | None:
    """Source views of one training example drawn from ``mix`` (count -> weight, ``TrainConfig.source_view_mix``);
    None for an empty mix (the example set's own count; nothing is drawn, so the random stream is unchanged)."""
    if not mix:
        return None
    weights = torch.tensor(list(mix.values()), dtype=torch.float64)
    return list(mix)[int(torch.multinomial(weights, 1, generator=gen))]


def patch_rays(maps: dict, p: int, gen: torch.Generator) -> torch.Tensor:
    """(p*p, 2) pixels of a p x p patch centred on a random mask pixel."""
    h, w = maps["mask"].shape
    idx = torch.nonzero(maps["mask"])
    cy, cx = idx[torch.randint(len(idx), (1,), generator=gen)][0].tolist() if len(idx) else (h // 2, w // 2)
    y0 = int(np.clip(cy - p // 2, 0, max(h - p, 0)))
    x0 = int(np.clip(cx - p // 2, 0, max(w - p, 0)))
    ys, xs = torch.meshgrid(torch.arange(y0, y0 + p), torch.arange(x0, x0 + p), indexing="ij")
    return torch.stack([xs, ys], -1).view(-1, 2).float()


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-10))


@dataclass
class TrainState:
    step: int
    history: list[dict] = field(default_factory=list)


def build_model(cfg: StudentConfig, device: torch.device) -> GHNeRF:
    torch.manual_seed(0)
    return GHNeRF(cfg).to(device)


def train(cfg: StudentConfig, tcfg: TrainConfig, examples: ExampleSet, out: str | Path, resume: bool = False,
          val_examples: ExampleSet | None = None, on_step: Callable[[int, dict], None] | None = None,
          log: Callable[[str], None] = print, init_from: str | Path | None = None,
          on_pretrain_step: Callable[[int, int, dict], None] | None = None) -> TrainState:
    """Train ``cfg`` on ``examples`` into the run folder ``out``.

    Args:
        resume: continue from ``out/checkpoints/latest.pt`` (model, optimiser, step and random state).
        init_from: start from this checkpoint's model weights (fine-tuning, as the retrain flow does); the
            optimiser, schedule and step count start afresh. Not together with ``resume``.
        on_step: called after every step with (step, record); record has loss, psnr, lr, it_s and the loss terms.
        on_pretrain_step: called after every 2D pretraining step with (step, steps, record); record has loss, lr,
            it_s (:func:`~ghnerf.student.pretrain_2d.pretrain_source_heatmaps`). Neither is called on other ranks.
    Raises:
        ConfigError: ``resume`` without a checkpoint, or a checkpoint of another config.
    """
    if resume and init_from:
        raise ConfigError("resume and init_from exclude each other: resume continues this run, init_from starts a "
                          "new run from another run's weights")
    if cfg.source_heatmap_head and cfg.losses.source_heatmap > 0 and not examples.source_targets:
        raise ConfigError(f"{cfg.name} has a source heatmap head: build the examples with source_targets=True")
    if tcfg.pretrain_2d_steps and not cfg.source_heatmap_head:
        raise ConfigError(f"{cfg.name} has no source heatmap head for 2D pretraining to train: use a config with it "
                          "(ghnerf-resnet18-evidence) or --pretrain-2d-steps 0")
    out = Path(out)
    ckdir = out / "checkpoints"
    requested = cfg
    weights = resolve_auto(cfg, tcfg.patch)  # "auto" weights -> the local files, or go on without them
    cfg = weights.config
    ctx, device = setup(tcfg.device)
    if tcfg.batch_examples % ctx.world:  # before anything is written
        teardown(ctx)
        raise ConfigError(f"batch_examples {tcfg.batch_examples} is not a multiple of the {ctx.world} torchrun "
                          f"processes; use --batch-examples {ctx.world * max(tcfg.batch_examples // ctx.world, 1)}")
    if not ctx.is_main:
        log = lambda *_: None  # noqa: E731 -- one rank speaks
    log(f"device: {device} ({'CUDA' if device.type == 'cuda' else 'no CUDA device; training on CPU'})"
        + (f"; DDP over {ctx.world} processes, global batch {tcfg.batch_examples}" if ctx.enabled else ""))
    if cfg.has_own_pose_network and not tcfg.pretrain_2d_steps and not (resume or init_from):
        log(f"note: {cfg.name} triangulates the keypoints of its own source heatmap head, and --pretrain-2d-steps is "
            f"0: that head starts untrained and learns only beside the NeRF steps (--pretrain-2d-steps auto, the "
            f"default, trains it first: {OWN_POSE_NETWORK_2D_STEPS} steps, then frozen)")
    precision = training_precision(tcfg.cpu_precision, device)
    log(f"precision: {precision.autocast} ({precision.reason})")
    torch.manual_seed(tcfg.seed)
    model = build_model(cfg.without_pretrained_load() if init_from or resume else cfg, device)  # or a checkpoint
    # fused: one kernel over all parameters (2-3x faster than the per-tensor loop on CPU; same update to rounding)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=tcfg.lr, fused=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tcfg.halving(), gamma=0.5)
    gen = torch.Generator().manual_seed(tcfg.seed)
    step = 0
    if resume:
        latest, ck = resume_point(ckdir, log, requested.name)
        weights = weights.as_resumed(requested, ck["student_config"], ck["meta"])  # auto: as the run started
        cfg = weights.config
        if ck["student_config"] != cfg:
            raise ConfigError(f"{latest} was trained with config {ck['student_config'].name}, not {cfg.name}")
        load_checked(model, ck["model"], latest)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        step = int(ck["step"])
        log(f"resumed from {latest} at step {step}")
    if init_from:
        ck = load_checkpoint(init_from)
        if replace(ck["student_config"], losses=cfg.losses, pretrained=cfg.pretrained) != cfg:  # same network
            raise ConfigError(f"{init_from} was trained with config {ck['student_config'].name}, not {cfg.name}")
        load_checked(model, ck["model"], init_from)
        log(f"initialised from {init_from} (step {ck['step']})")
    if weights.notice():
        log(weights.notice())
    pretrained_2d = None  # what run.json says of the 2D pretraining: what ran here, not only what tcfg asks
    if resume and step > 0:
        pretrained_2d = ck["meta"].get("pretrained_2d")  # the run's own, from its start
    elif tcfg.pretrain_2d_steps and init_from:
        pretrained_2d = {"skipped": f"fine-tuning: the pose network is {init_from}'s, as it was trained there"}
        log(f"2D pretraining skipped ({tcfg.pretrain_2d_steps} steps asked): {pretrained_2d['skipped']}")
    elif tcfg.pretrain_2d_steps and step == 0:  # DDP then broadcasts rank 0's weights
        pretrained_2d = pretrain_or_take(model, examples, tcfg, gen, device, log, precision.without_grad_scaler(),
                                         writes=ctx.is_main, on_step=on_pretrain_step if ctx.is_main else None)
    if tcfg.freeze_pretrained_2d:  # also when resuming: the flag is not in the checkpoint's weights
        model.freeze_human_path()
        log("encoder, projection and source heatmap head frozen after the 2D pretraining")
    perceptual = PerceptualLoss().to(device) if cfg.losses.perceptual > 0 and tcfg.patch > 0 else None
    meta = {"shards": examples.shard_refs(), "dataset": str(examples.reader.root),
            **weights.record(model.pretrained_weights), "items": len(examples),
            "init_from": str(init_from) if init_from else None, "pretrained_2d": pretrained_2d,
            "device": str(device),
            "precision": precision.record(),
            "target_fusion": None if examples.fusion is None else dataclasses.asdict(examples.fusion),
            "skipped_subjects": getattr(examples.reader, "skipped", []),
            "split": examples.split.record(),
            "source_views_used": {s.split_name: s.source_view_counts() for s in (examples, val_examples)
                                  if s is not None},
            "excluded_views": examples.excluded + (val_examples.excluded if val_examples is not None else []),
            "left_out_shards": [line for s in (examples.heatmap_store, examples.cse_store) if s is not None
                                for line in getattr(s, "left_out", [])]}
    if ctx.is_main:
        write_json(out / "run.json", {"student_config": cfg.to_dict(), "train_config": tcfg.model_dump(), **meta})
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    state = TrainState(step)
    model.train()
    t0 = time.perf_counter()
    B = tcfg.batch_examples
    cache = ExampleCache(examples, tcfg.example_cache_mb)
    net = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # DDP fails at the second step if a parameter gets no gradient (ghnerf-dino, +cse without CSE targets)
        # unless told to look for them, which costs a graph traversal per step: probe one example (every example
        # of a set has the same kinds of targets) and look only when needed.
        unused = params_without_grad(model, lambda m: _example_loss(
            m, examples.example(0), cfg, tcfg, perceptual, torch.Generator().manual_seed(0), device,
            precision)[0].total)
        if unused:
            log(f"{len(unused)} parameters get no gradient (e.g. {unused[0]}): DDP with find_unused_parameters")
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=bool(unused))
    while step < tcfg.steps:
        # Every rank draws the whole global batch from the shared generator (same on all ranks), then
        # renders its share: example b goes to rank b % world. One example per step keeps drawing from
        # ``gen`` itself; a larger batch gives each example its own generator seeded from ``gen``.
        indices = torch.randint(len(examples), (B,), generator=gen).tolist()
        counts = [draw_source_views(tcfg.source_view_mix, gen) for _ in range(B)]
        seeds = [None] if B == 1 else torch.randint(2**62, (B,), generator=gen).tolist()
        mine = list(range(ctx.rank, B, ctx.world))
        opt.zero_grad(set_to_none=True)
        sums = {"loss": 0.0, "mse": 0.0}
        terms: dict[str, float] = {}
        for j, b in enumerate(mine):
            g = gen if seeds[0] is None else torch.Generator().manual_seed(seeds[b])
            loss, mse = _example_loss(net, cache.example(indices[b], counts[b]), cfg, tcfg, perceptual, g, device,
                                       precision)
            sync = j == len(mine) - 1 or not ctx.enabled  # DDP averages gradients at the last backward only
            with (nullcontext() if sync else net.no_sync()):
                scaler.scale(loss.total / len(mine)).backward()
            sums["loss"] += float(loss.total.detach()) / len(mine)
            sums["mse"] += mse / len(mine)
            for k, v in loss.terms.items():
                terms[k] = terms.get(k, 0.0) + v / len(mine)
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        keys = sorted(terms)
        means = mean_over_ranks([sums["loss"], sums["mse"], *[terms[k] for k in keys]], ctx)
        record = {"step": step, "loss": means[0], **dict(zip(keys, means[2:])), "psnr": psnr(means[1]),
                  "lr": opt.param_groups[0]["lr"], "it_s": step / max(time.perf_counter() - t0, 1e-9)}
        state.history.append(record)
        if on_step and ctx.is_main:
            on_step(step, record)
        if ctx.is_main and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
            for name in (f"step_{step:07d}.pt", "latest.pt"):
                save_checkpoint(ckdir / name, model, opt, sched, gen, step, cfg, tcfg, meta)
            hold_point("checkpoint")  # a no-op unless a kill test sets GHNERF_HOLD (ghnerf/base/hold.py)
        if ctx.is_main and val_examples is not None and (step % tcfg.val_every == 0 or step == tcfg.steps):
            validation_image(model, val_examples.example(0), out / "val" / f"step_{step:07d}.png", device)
            model.train()
    if ctx.is_main:
        write_json(out / "history.json", state.history)
    teardown(ctx)
    return state


def _example_loss(net, ex: Example, cfg: StudentConfig, tcfg: TrainConfig, perceptual, gen: torch.Generator,
                  device: torch.device, precision: TrainingPrecision):
    """Rays and targets of one example at every level, the forward pass (under ``precision``'s autocast) and the loss.

    Returns:
        the :class:`~ghnerf.student.losses.StudentLoss` and the fine level's colour MSE (for PSNR).
    """
    rays, targets = [], []
    patch_uv = None
    for lv_idx, lv in enumerate(cfg.levels):
        H, W = ex.image.shape[:2]
        size = (max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1))
        maps = level_maps(ex, size, tcfg.heatmap_in_mask)
        n = tcfg.rays[min(lv_idx, len(tcfg.rays) - 1)]
        uv = sample_rays(maps, n, tcfg.in_mask_fraction, gen, tcfg.near_joints_fraction)
        if lv_idx == len(cfg.levels) - 1 and perceptual is not None:
            patch_uv = patch_rays(maps, tcfg.patch, gen)
            uv = torch.cat([uv, patch_uv])
        rays.append(uv.to(device))
        targets.append({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in
                        gather_targets(maps, uv, ex).items()})
    with_source = cfg.source_heatmap_head and cfg.losses.source_heatmap > 0
    with precision.context(device):
        source = None
        if with_source:
            levels, src_pred = net(ex.batch.to(device), rays, with_source_heatmaps=True)
            src_target = F.interpolate(ex.src_heatmaps.to(device), size=src_pred.shape[-2:], mode="area")
            source = (src_pred.float(), src_target, ex.src_joint_valid.to(device))
        else:
            levels = net(ex.batch.to(device), rays)
        patch = None
        if patch_uv is not None:
            P = tcfg.patch
            patch = (levels[-1].rgb[-P * P:].view(P, P, 3), targets[-1]["rgb"][-P * P:].view(P, P, 3))
        loss = student_loss(levels, targets, cfg.losses, perceptual, patch, source)
    return loss, float(((levels[-1].rgb.detach().float() - targets[-1]["rgb"]) ** 2).mean())
