"""Loading weights into a network only when they fit it: names, shapes, dtypes and finite values.

``nn.Module.load_state_dict`` copies NaN and truncates int64 into float parameters without a word, and
on a wrong name or shape raises a long ``RuntimeError``. Every place that loads weights a user gave (a
checkpoint for ``evaluate`` / ``render`` / ``export``, ``train --resume`` / ``--init-from``,
``--pretrained PATH``, ``import-enerf``) goes through :func:`load_checked`, which refuses in one line naming
the file and the first bad tensor.
"""

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ghnerf.base.errors import CheckpointError

SHOWN = 3  # names listed per kind of problem


def state_problems(state: Mapping, expected: Mapping[str, torch.Tensor], strict: bool = True) -> list[str]:
    """What keeps ``state`` from loading into a network whose state dict is ``expected`` (empty: it fits).

    Args:
        strict: every key of ``expected`` must be in ``state`` and no other (else only the keys given are
            checked, and each must be one of ``expected``).
    """
    problems = []
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state] if strict else []
    if missing or unexpected:
        problems.append("its tensors are not this network's (the weights of another architecture?): "
                        + "; ".join(f"{len(names)} {label}, e.g. {', '.join(map(repr, names[:SHOWN]))}"
                                    for names, label in ((missing, "missing"), (unexpected, "unexpected"))
                                    if names))
    for name, ref in expected.items():
        value = state.get(name)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"{name!r} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(ref.shape):
            problems.append(f"tensor {name!r} has shape {tuple(value.shape)}, the network's is {tuple(ref.shape)}")
        elif ref.is_floating_point() and not value.is_floating_point():
            problems.append(f"tensor {name!r} is {str(value.dtype).removeprefix('torch.')}, not floating point")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problems.append(f"tensor {name!r} holds NaN or Inf")
    return problems


def load_checked(module: nn.Module, state: Mapping, path: str | Path, strict: bool = True) -> None:
    """Load ``state`` into ``module`` when it fits (see :func:`state_problems`).

    Raises:
        CheckpointError: names ``path``, the first problem and how many more; nothing was loaded.
    """
    problems = state_problems(state, module.state_dict(), strict)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CheckpointError(path, f"{problems[0]}{more}; it was not loaded")
    module.load_state_dict(state, strict=strict)


def read_state_file(path: str | Path) -> dict:
    """A plain state dict file (``--pretrained PATH``, torch hub weights), read with ``weights_only=True``.

    Raises:
        CheckpointError: unreadable, refused by ``weights_only`` (a crafted pickle), or not a dict of tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for a file that is not its own
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(path, f"not a readable weights file (torch.load with weights_only: {first[:200]}); "
                                    "it was not loaded") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "not a state dict (a dict of tensors); it was not loaded")
    return state
