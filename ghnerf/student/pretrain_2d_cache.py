"""A folder of 2D-pretrained pose networks (``TrainConfig.pretrain_2d_cache``), each under a key of everything that
decides it, so runs that would pretrain the same network take it instead of pretraining again.

The 2D pretraining (:mod:`ghnerf.student.pretrain_2d`) is deterministic given its inputs: the human path's initial
weights (config, seed, encoder weights), its settings (steps, rate, warps, precision), the random generator's state,
the training examples (dataset, split, scale, views, teacher shards) and the code. The key hashes all of them; an
entry holds the human path's weights after the pretraining and the generator states, so a run that takes it goes on
exactly as if it had pretrained itself. A damaged entry is refused and named, never replaced.
"""

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

from ghnerf.base.errors import CheckpointError
from ghnerf.student.augment_2d import Augment2D
from ghnerf.student.checkpoints import write_torch
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF
from ghnerf.student.precision import TrainingPrecision
from ghnerf.student.pretrain_2d import pretrain_source_heatmaps
from ghnerf.student.train_config import TrainConfig

ENTRY_SUFFIX = ".pt"


def _code_identity() -> str:
    """The commit of this checkout, with a hash of its uncommitted changes (the pretraining code may be among them)."""
    from storage.catalog import code_version

    version = code_version()
    if not version.endswith("+dirty"):
        return version
    here = Path(__file__).resolve().parents[2]
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=here, capture_output=True, timeout=30).stdout
    return version + ":" + hashlib.sha256(diff).hexdigest()[:16]


def _state_hash(states: list[dict]) -> str:
    digest = hashlib.sha256()
    for state in states:
        for name, tensor in sorted(state.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                          if tensor.numel() else b"")
    return digest.hexdigest()


def _examples_identity(examples: ExampleSet) -> dict:
    """What the 2D pretraining reads of ``examples`` (the shards by content hash; their inputs are checked against
    the dataset before training)."""
    return {"dataset": str(Path(examples.reader.root).resolve()), "split": examples.split.record(),
            "scale": examples.scale, "source_views": examples.source_views,
            "items": hashlib.sha256(json.dumps(examples.items).encode()).hexdigest(),
            "heatmaps": str(examples.heatmaps), "shards": sorted(r["sha256"] for r in examples.shard_refs()),
            "fusion": None if examples.fusion is None else dataclasses.asdict(examples.fusion),
            "excluded": examples.excluded}


def pretraining_settings(tcfg: TrainConfig) -> dict:
    """The optimisation settings a 2D-pretrained pose network depends on: part of :func:`pretraining_key` (runs that
    differ in them never share an entry)."""
    return {"steps": tcfg.pretrain_2d_steps, "lr": tcfg.lr, "augment": tcfg.pretrain_2d_augment}


def pretraining_key(model: GHNeRF, examples: ExampleSet, tcfg: TrainConfig, autocast: str,
                    gen: torch.Generator) -> str:
    """The key of the 2D pretraining ``model`` is about to get (before it starts)."""
    described = {"human_path": _state_hash([m.state_dict() for m in model.human_path()]),
                 **pretraining_settings(tcfg), "autocast": autocast,
                 "generator": hashlib.sha256(gen.get_state().numpy().tobytes()).hexdigest(),
                 "examples": _examples_identity(examples), "code": _code_identity()}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


def entry_path(folder: str | Path, key: str) -> Path:
    return Path(folder).expanduser() / f"{key}{ENTRY_SUFFIX}"


def take(folder: str | Path, key: str, model: GHNeRF, gen: torch.Generator) -> Path | None:
    """Load the entry ``key`` into ``model``'s human path and the generators; None when there is none.

    Raises:
        CheckpointError: the entry is damaged or does not fit the model (named; it is left as it is).
    """
    path = entry_path(folder, key)
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        for module, state in zip(model.human_path(), entry["human_path"], strict=True):
            module.load_state_dict(state)
        gen.set_state(entry["generator"])
        torch.set_rng_state(entry["torch_rng"])
    except Exception as exc:  # noqa: BLE001 -- any unreadable entry is one line naming it
        raise CheckpointError(path, f"damaged 2D pretraining cache entry ({str(exc).splitlines()[0][:200]}); remove "
                                    "it to pretrain again, or train without --pretrain-2d-cache") from None
    return path


def store(folder: str | Path, key: str, model: GHNeRF, gen: torch.Generator) -> Path:
    """Write ``model``'s human path and the generator states after the pretraining as the entry ``key``
    (atomically)."""
    path = entry_path(folder, key)
    write_torch(path, {"human_path": [m.state_dict() for m in model.human_path()], "generator": gen.get_state(),
                       "torch_rng": torch.get_rng_state()})
    return path


def pretrain_or_take(model: GHNeRF, examples: ExampleSet, tcfg: TrainConfig, gen: torch.Generator,
                     device: torch.device, log: Callable[[str], None], precision: TrainingPrecision,
                     writes: bool = True, on_step: Callable[[int, int, dict], None] | None = None) -> dict:
    """The run's 2D pretraining (``tcfg.pretrain_2d_steps``): taken from ``tcfg.pretrain_2d_cache`` when the entry is
    there, else run (and stored there when ``writes``; ``on_step`` as :func:`pretrain_source_heatmaps` takes it).
    Returns the record for run.json."""
    folder = tcfg.pretrain_2d_cache
    key = None if folder is None else pretraining_key(model, examples, tcfg, precision.autocast, gen)
    if key is not None and (taken := take(folder, key, model, gen)) is not None:
        log(f"2D pretraining taken from {taken} (the same initial weights, settings, seed, examples and code)")
        return {"cache": str(folder), "key": key, "taken": True}
    if folder is None:
        log(f"2D pretraining: {tcfg.pretrain_2d_steps} steps, kept nowhere (--pretrain-2d-cache DIR keeps the network "
            "under a key of everything that decides it; a later run that would pretrain the same one takes it)")
    pretrain_source_heatmaps(model, examples, tcfg.pretrain_2d_steps, tcfg.lr, gen, device, log, precision,
                             Augment2D() if tcfg.pretrain_2d_augment else None, on_step)
    if key is not None and writes:
        log(f"2D pretraining stored as {store(folder, key, model, gen)}")
    return {"cache": None if folder is None else str(folder), "key": key, "taken": False}
