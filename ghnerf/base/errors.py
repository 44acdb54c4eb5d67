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


class UnsafeFileError(DataReadError):
    """A dataset file holds a pickled object of a class that dataset files never contain; it was not loaded.

    Args:
        path: the refused file.
        refused: ``module.name`` of the class or function the file asked to load.
    """

    def __init__(self, path: str | Path, refused: str):
        self.refused = refused
        super().__init__(path, f"refused to load: the file holds a pickled {refused}, and a dataset file may hold "
                               "only numpy arrays, dicts, lists, tuples, strings and numbers (anything else could "
                               "run code); nothing in it was run: replace it with a clean copy")


class BadViewsError(GHNeRFError):
    """Views a run would use are unusable (checked before step 1); the message lists every bad file.

    Args:
        bad: ``{"path", "problem", "view"}`` per bad file.
        remedy: what the user can do besides fixing the files (e.g. the option that excludes them).
    """

    def __init__(self, bad: list[dict], remedy: str):
        self.bad = bad
        lines = [f"  {b['path']}: {b['problem']} (view {b['view']})" for b in bad]
        views = len({b["view"] for b in bad})
        super().__init__(f"{views} view(s) this run would use are unusable ({len(bad)} bad file(s), listed below): "
                         f"fix or restore them, or {remedy}\n" + "\n".join(lines))


class CheckpointError(DataReadError):
    """A checkpoint file is missing, truncated, damaged, or not one ``ghnerf train`` wrote (never loaded then)."""


class OptionError(GHNeRFError):
    """One or more command-line options (or spec fields) are out of range; one line per bad option."""
