"""Data-parallel training under ``torchrun``: process group set-up, rank helpers, averaged scalars.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1``
:func:`setup` joins the process group (``nccl`` on CUDA, ``gloo`` on CPU) and picks
this rank's device. Without torchrun everything here is a no-op for one process, so
:func:`ghnerf.student.train.train` has one code path. See docs/scaling.md.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ghnerf.base.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(name: str = "auto") -> torch.device:
    """``cuda`` when present (or asked for), else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but this machine has no CUDA device")
    return torch.device(name)


def setup(device_name: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; returns (context, this rank's device).

    Raises:
        ConfigError: ``cuda`` asked for without CUDA, or fewer GPUs than local ranks.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world <= 1:
        return DistContext(), device
    cuda = device.type == "cuda"
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if cuda:
        if ctx.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {ctx.local_rank} but only {torch.cuda.device_count()} GPU(s): start "
                              "torchrun with --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return ctx, torch.device(f"cuda:{ctx.local_rank}" if cuda else "cpu")


def mean_over_ranks(values: list[float], ctx: DistContext) -> list[float]:
    """Average scalars over every rank (identity for one process)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / ctx.world).tolist()


def params_without_grad(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module], torch.Tensor]) -> list[str]:
    """Trainable parameters that one backward of ``loss_fn(model)`` leaves without a gradient.

    DDP needs ``find_unused_parameters`` exactly when this is non-empty (e.g. ghnerf-dino's ViT blocks after its
    feature layer, a +cse head without CSE targets). The probe leaves no trace: gradients are cleared and buffers
    (BatchNorm statistics) and the random state restored, so training continues bit for bit as without it.
    """
    buffers = [b.detach().clone() for b in model.buffers()]
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices):
        loss_fn(model).backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)
    return names


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
