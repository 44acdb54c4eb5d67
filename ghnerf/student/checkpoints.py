"""Reading checkpoint files safely: damaged or foreign files become one :class:`CheckpointError` naming them.

``torch.load(weights_only=True)`` refuses any pickle that would build objects other
than tensors and plain values (so a crafted file runs no code); a truncated or
empty file fails inside torch's zip reader. Both are turned into a message that
names the file, says whether it is damaged or not a ``ghnerf train`` checkpoint,
and, for a damaged one, names the newest intact ``step_*.pt`` next to it.
"""

import io
import json
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ghnerf.base.errors import CheckpointError, ConfigError, GHNeRFError
from ghnerf.base.fileio import write_bytes
from ghnerf.student.config import StudentConfig
from ghnerf.student.train_config import TrainConfig

WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # how torch starts the message of a refused pickle
KEYS = ("model", "optimizer", "scheduler", "step", "generator", "student_config", "train_config", "code_version",
        "meta")


def read_checkpoint(path: Path, hint: bool = True) -> dict:
    """The raw dict in ``path`` (tensors and plain values only).

    Args:
        hint: name the newest intact ``step_*.pt`` next to a damaged file in the message.

    Raises:
        CheckpointError: missing, empty, truncated or damaged, or holding objects this project never writes
            (refused unloaded), or a torch file without the keys ``ghnerf train`` writes.
    """
    if not path.is_file():
        siblings = path.parent.is_dir() and any(path.parent.glob("step_*.pt"))
        raise CheckpointError(path, "no such checkpoint" + (_hint(path, hint) if siblings else ""))
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file (0 bytes): the checkpoint is damaged" + _hint(path, hint))
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol before refusing it
            warnings.simplefilter("ignore", UserWarning)
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith(WEIGHTS_ONLY_REFUSAL):
            found = re.search(r"GLOBAL (\S+)", str(exc)) or re.search(r"(Unsupported [^\n.]*)", str(exc))
            refused = f" (refused: {found.group(1)})" if found else ""
            raise CheckpointError(path, "not a checkpoint this project wrote: it holds objects other than tensors "
                                        f"and plain values{refused}; it was not loaded") from None
        raise CheckpointError(path, f"damaged checkpoint ({_first_line(exc)})" + _hint(path, hint)) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as exc:
        raise CheckpointError(path, f"truncated or damaged checkpoint ({_first_line(exc)})"
                                    + _hint(path, hint)) from None
    if not isinstance(ck, dict) or not set(KEYS) <= set(ck):
        raise CheckpointError(path, "not a checkpoint written by `ghnerf train` (a torch file without its model, "
                                    "optimiser, configs and lineage)")
    return ck


def newest_intact(folder: Path, load: Callable[[Path], dict], skip: Path | None = None) -> tuple[Path, dict] | None:
    """The newest ``step_*.pt`` in ``folder`` that ``load`` reads without error (and is not ``skip``), or None."""
    for path in sorted(folder.glob("step_*.pt"), reverse=True):
        if skip is not None and path == skip:
            continue
        try:
            return path, load(path)
        except GHNeRFError:
            continue
    return None


def _hint(path: Path, wanted: bool) -> str:
    if not wanted:
        return ""
    found = newest_intact(path.parent, lambda p: read_checkpoint(p, hint=False), skip=path)
    if found is None:
        return "; no intact step_*.pt next to it: train again"
    return f"; the newest intact checkpoint of this run is {found[0]} (`ghnerf train --resume` falls back to it)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].split('. ')[0]}" if text else type(exc).__name__


def save_checkpoint(path: Path, model: nn.Module, opt, sched, gen: torch.Generator, step: int, cfg: StudentConfig,
                    tcfg: TrainConfig, meta: dict) -> None:
    from storage.catalog import code_version

    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "step": step, "generator": gen.get_state(), "student_config": json.dumps(cfg.to_dict()),
               "train_config": tcfg.model_dump_json(), "code_version": code_version(), "meta": json.dumps(meta)}
    write_torch(path, payload)


def write_torch(path: Path, payload: dict) -> None:
    """``torch.save(payload)`` to ``path``, atomically (write_bytes: a failed write names the path and the cause)."""
    buffer = io.BytesIO()  # torch's file writer fails with a RuntimeError; ours names the path and the cause
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


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


def resume_point(ckdir: Path, log: Callable[[str], None], config_name: str | None = None) -> tuple[Path, dict]:
    """The checkpoint ``--resume`` continues from: ``latest.pt``, or when it is missing or damaged the newest
    intact ``step_*.pt`` of config ``config_name`` (saying so; step files of another model are passed over).

    Raises:
        ConfigError: no checkpoint at all; CheckpointError: none of them is intact.
    """
    latest = ckdir / "latest.pt"

    def same_model(p: Path) -> dict:
        ck = load_checkpoint(p, hint=False)
        if config_name is not None and ck["student_config"].name != config_name:
            raise ConfigError(f"{p} is a checkpoint of {ck['student_config'].name}, not {config_name}")
        return ck

    try:
        return latest, load_checkpoint(latest, hint=False)
    except CheckpointError as exc:
        if not latest.is_file() and not any(ckdir.glob("step_*.pt")):
            raise ConfigError(f"--resume: no checkpoint at {latest}") from None
        found = newest_intact(ckdir, same_model)
        if found is None:
            of = f" (of config {config_name})" if config_name else ""
            raise CheckpointError(latest, f"{exc.problem}; no intact step_*.pt next to it either{of}: train "
                                          "without --resume") from None
        log(f"--resume: {exc}; resuming from {found[0]}, the newest intact checkpoint")
        return found
