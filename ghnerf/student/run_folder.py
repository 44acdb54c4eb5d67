"""A run folder holds one run: writing a new run into a folder that is not empty needs an explicit ``overwrite``.

``ghnerf train`` (without ``--resume``) and ``ghnerf import-enerf`` replace ``latest.pt`` and ``run.json``;
another run's ``step_*.pt``, ``history.json`` and ``eval_*/`` left beside them would then be taken for this
run's (a later ``--resume`` would fall back to a step file of another model). So a new run starts only in a
new or empty folder, or with ``overwrite``, which clears the folder first, and only a folder that holds a run
(``run.json`` or ``checkpoints/``): a folder of other files is never cleared.
"""

import shutil
from pathlib import Path

from ghnerf.base.errors import ConfigError

RUN_MARKERS = ("run.json", "checkpoints")
LISTED = 4  # entries named in the refusal


class RunFolderError(ConfigError):
    """A new run was asked for in a folder that already holds something."""


def check_run_folder(out: str | Path, resume: bool = False, overwrite: bool = False) -> bool:
    """Whether a new run may be written to ``out``; True when it must be cleared first (``overwrite``).

    Raises:
        RunFolderError: ``out`` is not empty and neither ``resume`` nor ``overwrite`` is given; or ``overwrite``
            of a folder that holds no run; or ``resume`` together with ``overwrite``.
    """
    out = Path(out)
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in the folder and --overwrite clears it: give one of them")
    if resume or not out.is_dir():
        return False
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    if not held:
        return False
    listing = ", ".join(held[:LISTED]) + (f" and {len(held) - LISTED} more" if len(held) > LISTED else "")
    if not overwrite:
        raise RunFolderError(f"{out}: the run folder is not empty (it holds {listing}); a run folder holds one run: "
                             "pass --resume to continue its run, --overwrite to clear it and start again, or "
                             "another --out")
    if not any((out / m).exists() for m in RUN_MARKERS):
        raise RunFolderError(f"{out}: not a run folder (no run.json or checkpoints/; it holds {listing}), so "
                             "--overwrite does not clear it: give a new or empty --out")
    return True


def clear_run_folder(out: str | Path) -> None:
    """Remove everything inside ``out`` (the folder itself stays)."""
    for p in sorted(Path(out).iterdir()):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=False)
        else:
            p.unlink(missing_ok=True)


def prepare_run_folder(out: str | Path, resume: bool = False, overwrite: bool = False, clear: bool = True) -> None:
    """:func:`check_run_folder`, then clear the folder when it holds a run being overwritten (``clear``: this
    process does it; under torchrun only rank 0)."""
    if check_run_folder(out, resume, overwrite) and clear:
        clear_run_folder(out)
