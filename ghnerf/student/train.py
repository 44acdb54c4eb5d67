"""Student training: ray sampling inside the body, Adam with step decay, checkpoints that resume exactly.

A checkpoint (``RUN/checkpoints/step_XXXXXXX.pt`` and ``latest.pt``, written
atomically) holds only tensors and plain values, so it loads with
``torch.load(weights_only=True)``: model and optimiser state, step, the random
generator state (rays and examples are drawn from it, so a resumed run continues
exactly as an uninterrupted one would), the student and training configs, the
code version, and every shard the targets came from (for ``ghnerf lineage``).
"""

import dataclasses
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ghnerf.base.errors import CheckpointError, ConfigError
from ghnerf.base.fileio import atomic_path, write_image, write_json
from ghnerf.base.hold import hold_point
from ghnerf.student.checkpoints import newest_intact, read_checkpoint
from ghnerf.student.config import StudentConfig
from ghnerf.student.data import Example, ExampleSet
from ghnerf.student.distributed import mean_over_ranks, params_without_grad, setup, teardown
from ghnerf.student.distributed import pick_device  # noqa: F401 (re-export)
from ghnerf.student.losses import PerceptualLoss, student_loss
from ghnerf.student.model import GHNeRF, SourceEncoding
from ghnerf.student.pretrain_2d import pretrain_source_heatmaps
from ghnerf.student.weights import resolve_auto

PAPER_TOTAL_STEPS = 200_000  # "converged after about 200k iterations" (paper §4.1)
PAPER_HALVING_STEPS = 50_000


class TrainConfig(BaseModel):
    """Optimisation settings (one source of defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(2000, ge=1)
    lr: float = Field(5e-4, gt=0)
    lr_halving_steps: int | None = Field(None, ge=1, description="default: 50k scaled by steps / 200k")
    grad_clip: float = Field(1.0, gt=0)
    rays: tuple[int, ...] = Field((256, 1024), description="rays per level per step")
    in_mask_fraction: float = Field(0.8, ge=0, le=1, description="share of rays inside the mask (rest: body box)")
    near_joints_fraction: float = Field(0.0, ge=0, le=1, description="share of rays drawn where a target heatmap "
                                                                     "is >= 0.1 (before the mask / box split)")
    heatmap_in_mask: bool = Field(False, description="zero the heatmap targets outside the foreground mask (volume "
                                                     "rendering gives heatmaps only where there is density)")
    patch: int = Field(0, ge=0, description="side of the fine-level patch for the perceptual loss (0: none)")
    image_scale: float = Field(0.5, gt=0, le=1)
    seed: int = 0
    checkpoint_every: int = Field(500, ge=1)
    val_every: int = Field(500, ge=1)
    device: str = "auto"
    pretrain_2d_steps: int = Field(0, ge=0, description="steps of 2D pretraining of the encoder and source heatmap "
                                   "head on the source views' heatmap targets before the NeRF steps (fresh runs "
                                   "only; ghnerf.student.pretrain_2d)")
    batch_examples: int = Field(1, ge=1, description="examples per step over all processes (torchrun: a multiple "
                                                     "of the process count)")

    def halving(self) -> int:
        return self.lr_halving_steps or max(1, round(PAPER_HALVING_STEPS * self.steps / PAPER_TOTAL_STEPS))


def level_maps(ex: Example, size: tuple[int, int], heatmap_in_mask: bool = False) -> dict:
    """Target maps of one example resized to a level's render resolution.

    ``heatmap_in_mask``: heatmap targets are zeroed outside the foreground mask (at full resolution, before resizing).
    """
    h, w = size
    img = ex.image.permute(2, 0, 1)[None]
    out = {"rgb": F.interpolate(img, size=size, mode="area")[0].permute(1, 2, 0) if (h, w) != img.shape[-2:]
           else ex.image,
           "mask": F.interpolate(ex.mask[None, None].float(), size=size, mode="nearest")[0, 0].bool(),
           "box": F.interpolate(ex.box[None, None].float(), size=size, mode="nearest")[0, 0].bool()}
    if ex.heatmaps is not None:
        hm = ex.heatmaps * ex.mask if heatmap_in_mask else ex.heatmaps
        out["heatmaps"] = F.interpolate(hm[None], size=size, mode="bilinear", align_corners=False)[0]
    if ex.cse is not None:
        out["cse"] = F.interpolate(ex.cse[None], size=size, mode="nearest")[0]
        out["cse_mask"] = F.interpolate(ex.cse_mask[None, None].float(), size=size, mode="nearest")[0, 0].bool()
    return out


def gather_targets(maps: dict, uv: torch.Tensor, ex: Example) -> dict:
    x, y = uv[:, 0].long(), uv[:, 1].long()
    t = {"rgb": maps["rgb"][y, x], "joint_valid": ex.joint_valid}
    if "heatmaps" in maps:
        t["heatmaps"] = maps["heatmaps"][:, y, x].T
    if "cse" in maps:
        t["cse"] = maps["cse"][:, y, x].T
        t["cse_mask"] = maps["cse_mask"][y, x]
    return t


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


def save_checkpoint(path: Path, model: GHNeRF, opt, sched, gen: torch.Generator, step: int, cfg: StudentConfig,
                    tcfg: TrainConfig, meta: dict) -> None:
    from storage.catalog import code_version

    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "step": step, "generator": gen.get_state(), "student_config": json.dumps(cfg.to_dict()),
               "train_config": tcfg.model_dump_json(), "code_version": code_version(), "meta": json.dumps(meta)}
    with atomic_path(path, ".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, hint: bool = True) -> dict:
    """Load with ``weights_only=True`` and decode the JSON fields.

    Raises:
        CheckpointError: the file is missing, damaged, or not a ``ghnerf train`` checkpoint (names it).
    """
    path = Path(path)
    ck = read_checkpoint(path, hint)
    try:
        ck["student_config"] = StudentConfig.from_dict(json.loads(ck["student_config"]))
        ck["train_config"] = TrainConfig.model_validate_json(ck["train_config"])
        ck["meta"] = json.loads(ck["meta"])
    except (ValueError, TypeError, ConfigError) as exc:
        raise CheckpointError(path, f"not a checkpoint of this version of ghnerf: its configs do not decode "
                                    f"({str(exc).splitlines()[0]})") from None
    return ck


def resume_point(ckdir: Path, log: Callable[[str], None]) -> tuple[Path, dict]:
    """The checkpoint ``--resume`` continues from: ``latest.pt``, or when it is missing or damaged the newest
    intact ``step_*.pt`` (saying so).

    Raises:
        ConfigError: no checkpoint at all; CheckpointError: none of them is intact.
    """
    latest = ckdir / "latest.pt"
    try:
        return latest, load_checkpoint(latest, hint=False)
    except CheckpointError as exc:
        if not latest.is_file() and not any(ckdir.glob("step_*.pt")):
            raise ConfigError(f"--resume: no checkpoint at {latest}") from None
        found = newest_intact(ckdir, lambda p: load_checkpoint(p, hint=False))
        if found is None:
            raise CheckpointError(latest, f"{exc.problem}; no intact step_*.pt next to it either: train without "
                                          "--resume") from None
        log(f"--resume: {exc}; resuming from {found[0]}, the newest intact checkpoint")
        return found


def build_model(cfg: StudentConfig, device: torch.device) -> GHNeRF:
    torch.manual_seed(0)
    return GHNeRF(cfg).to(device)


def train(cfg: StudentConfig, tcfg: TrainConfig, examples: ExampleSet, out: str | Path, resume: bool = False,
          val_examples: ExampleSet | None = None, on_step: Callable[[int, dict], None] | None = None,
          log: Callable[[str], None] = print, init_from: str | Path | None = None) -> TrainState:
    """Train ``cfg`` on ``examples`` into the run folder ``out``.

    Args:
        resume: continue from ``out/checkpoints/latest.pt`` (model, optimiser, step and random state).
        init_from: start from this checkpoint's model weights (fine-tuning, as the retrain flow does); the
            optimiser, schedule and step count start afresh. Not together with ``resume``.
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
    torch.manual_seed(tcfg.seed)
    model = build_model(cfg.without_pretrained_load() if init_from or resume else cfg, device)  # or a checkpoint
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tcfg.halving(), gamma=0.5)
    gen = torch.Generator().manual_seed(tcfg.seed)
    step = 0
    if resume:
        latest, ck = resume_point(ckdir, log)
        weights = weights.as_resumed(requested, ck["student_config"], ck["meta"])  # auto: as the run started
        cfg = weights.config
        if ck["student_config"] != cfg:
            raise ConfigError(f"{latest} was trained with config {ck['student_config'].name}, not {cfg.name}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        step = int(ck["step"])
        log(f"resumed from {latest} at step {step}")
    if init_from:
        ck = load_checkpoint(init_from)
        if replace(ck["student_config"], losses=cfg.losses, pretrained=cfg.pretrained) != cfg:  # same network
            raise ConfigError(f"{init_from} was trained with config {ck['student_config'].name}, not {cfg.name}")
        model.load_state_dict(ck["model"])
        log(f"initialised from {init_from} (step {ck['step']})")
    if weights.notice():
        log(weights.notice())
    if tcfg.pretrain_2d_steps and step == 0 and not init_from:  # DDP then broadcasts rank 0's weights
        pretrain_source_heatmaps(model, examples, tcfg.pretrain_2d_steps, tcfg.lr, gen, device, log)
    perceptual = PerceptualLoss().to(device) if cfg.losses.perceptual > 0 and tcfg.patch > 0 else None
    meta = {"shards": examples.shard_refs(), "dataset": str(examples.reader.root),
            **weights.record(model.pretrained_weights), "items": len(examples),
            "init_from": str(init_from) if init_from else None, "device": str(device),
            "target_fusion": None if examples.fusion is None else dataclasses.asdict(examples.fusion),
            "skipped_subjects": getattr(examples.reader, "skipped", []),
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
    net = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # DDP fails at the second step if a parameter gets no gradient (ghnerf-dino, +cse without CSE targets)
        # unless told to look for them, which costs a graph traversal per step: probe one example (every example
        # of a set has the same kinds of targets) and look only when needed.
        unused = params_without_grad(model, lambda m: _example_loss(
            m, examples.example(0), cfg, tcfg, perceptual, torch.Generator().manual_seed(0), device)[0].total)
        if unused:
            log(f"{len(unused)} parameters get no gradient (e.g. {unused[0]}): DDP with find_unused_parameters")
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=bool(unused))
    while step < tcfg.steps:
        # Every rank draws the whole global batch from the shared generator (same on all ranks), then
        # renders its share: example b goes to rank b % world. One example per step keeps drawing from
        # ``gen`` itself; a larger batch gives each example its own generator seeded from ``gen``.
        indices = torch.randint(len(examples), (B,), generator=gen).tolist()
        seeds = [None] if B == 1 else torch.randint(2**62, (B,), generator=gen).tolist()
        mine = list(range(ctx.rank, B, ctx.world))
        opt.zero_grad(set_to_none=True)
        sums = {"loss": 0.0, "mse": 0.0}
        terms: dict[str, float] = {}
        for j, b in enumerate(mine):
            g = gen if seeds[0] is None else torch.Generator().manual_seed(seeds[b])
            loss, mse = _example_loss(net, examples.example(indices[b]), cfg, tcfg, perceptual, g, device)
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
                  device: torch.device):
    """Rays and targets of one example at every level, the forward pass and the loss.

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
    with torch.autocast(device.type, enabled=device.type == "cuda"):
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


@torch.no_grad()
def render_full_view(model: GHNeRF, ex: Example, device: torch.device, chunk: int = 4096,
                     encoding: SourceEncoding | None = None) -> dict:
    """Render every pixel of the fine level inside the body box (rest black), eval mode.

    One model call: each level's cost volume is built once for the view; only the per-ray work is chunked.
    ``encoding``: the source views' :meth:`GHNeRF.encode` from an earlier call with the same source images
    (returned as ``"encoding"``), so that views sharing their sources encode them once."""
    model.eval()
    H, W = ex.image.shape[:2]
    lv = model.cfg.levels[-1]
    size = (max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1))
    box = level_maps(ex, size)["box"]
    uv = torch.nonzero(box).flip(-1).float().to(device)
    rays = [uv.new_zeros((0, 2))] * (len(model.cfg.levels) - 1) + [uv]  # coarse levels guide only
    batch = ex.batch.to(device)
    encoding = encoding or model.encode(batch)
    out = model(batch, rays, encoding=encoding, chunk=chunk)[-1]
    x, y = uv[:, 0].long().cpu(), uv[:, 1].long().cpu()

    def scatter(values: torch.Tensor | None, channels: int | None) -> torch.Tensor | None:
        if values is None:
            return None
        image = torch.zeros(*size, channels) if channels else torch.zeros(size)
        image[y, x] = values.float().cpu()
        return image

    hm, cse = scatter(out.heatmaps, model.cfg.num_joints), scatter(out.cse, model.cfg.cse_dim)
    return {"rgb": scatter(out.rgb, 3), "heatmaps": None if hm is None else hm.permute(2, 0, 1),
            "cse": None if cse is None else cse.permute(2, 0, 1), "depth": scatter(out.depth, None), "box": box,
            "encoding": encoding}


def validation_image(model: GHNeRF, ex: Example, path: Path, device: torch.device) -> None:
    """Rendered | ground truth | predicted heatmaps over the render, side by side."""
    from ghnerf.base.viz import heatmap_overlay

    r = render_full_view(model, ex, device)
    pred = (r["rgb"].clamp(0, 1).numpy() * 255).astype(np.uint8)
    gt = (level_maps(ex, pred.shape[:2])["rgb"].numpy() * 255).astype(np.uint8)
    tiles = [pred, gt]
    if r["heatmaps"] is not None:
        tiles.append(heatmap_overlay(pred, r["heatmaps"].numpy()))
    write_image(path, np.concatenate(tiles, axis=1))
