"""What both readers share: a dataset root holding one folder per subject, opened lazily."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from ghnerf.errors import DataReadError

SequenceT = TypeVar("SequenceT")


class SubjectFolders(Generic[SequenceT]):
    """Subject folders of a dataset root, each opened once with ``open_sequence`` on first use.

    Args:
        root: the dataset root (or one subject folder).
        dirs: the subject folders found there, in order.
        open_sequence: the layout's sequence class.
        nothing_found: message when ``dirs`` is empty.
    """

    layout = ""

    def __init__(self, root: Path, dirs: Sequence[Path], open_sequence: Callable[[Path], SequenceT],
                 nothing_found: str):
        self.root = Path(root)
        if not dirs:
            raise DataReadError(self.root, nothing_found)
        self._dirs = {p.name: p for p in dirs}
        self._open_sequence = open_sequence
        self._open: dict[str, SequenceT] = {}

    def subjects(self) -> list[str]:
        return list(self._dirs)

    def sequence(self, name: str) -> SequenceT:
        if name not in self._open:
            if name not in self._dirs:
                raise DataReadError(self.root / name, f"no such subject; available: {', '.join(self._dirs)}")
            self._open[name] = self._open_sequence(self._dirs[name])
        return self._open[name]
