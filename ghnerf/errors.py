"""The project's own exception types.

Every error a user can cause (bad data, bad config, missing weights) derives from
:class:`GHNeRFError` and carries a message that names the file and says what is
wrong and how to fix it. The CLI prints these without a traceback.
"""

from pathlib import Path


class GHNeRFError(Exception):
    """Base class of every user-facing error in ghnerf, teachers, storage and flows."""


class DataReadError(GHNeRFError):
    """A dataset file is missing, unreadable or inconsistent with the rest of the dataset.

    Args:
        path: the offending file or folder.
        problem: what is wrong, and what to do about it.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(GHNeRFError):
    """A configuration value or command-line option is invalid."""


class NonFiniteError(GHNeRFError):
    """A tensor that must be finite contains NaN or Inf (names the quantity and where)."""


class WeightsNotFoundError(GHNeRFError):
    """Pretrained weights are not in the local caches; the message names the exact file and where to put it."""


class CheckpointError(DataReadError):
    """A checkpoint file is missing, truncated, damaged, or not one ``ghnerf train`` wrote (never loaded then)."""


class OptionError(GHNeRFError):
    """One or more command-line options (or spec fields) are out of range; one line per bad option."""
