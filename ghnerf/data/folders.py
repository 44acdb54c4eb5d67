"""What both readers share: a dataset root holding one folder per subject, opened lazily; each camera's image size."""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Generic, TypeVar

from ghnerf.base.errors import DataReadError
from ghnerf.base.fileio import image_size
from ghnerf.data.records import SubjectSummary

PROBE_FRAMES = 10  # frames (poses) whose image headers set each camera's image size

SequenceT = TypeVar("SequenceT")


class SubjectFolders(Generic[SequenceT]):
    """Subject folders of a dataset root, each opened once with ``open_sequence`` on first use.

    Args:
        root: the dataset root (or one subject folder).
        dirs: the subject folders found there, in order.
        open_sequence: the layout's sequence class.
        nothing_found: message when ``dirs`` is empty.
        skipped: folders that look like subjects but cannot be read, as ``{"name", "path", "reason"}``
            (``ghnerf data inspect --json`` lists them; every command warns about them).
    """

    layout = ""

    def __init__(self, root: Path, dirs: Sequence[Path], open_sequence: Callable[[Path], SequenceT],
                 nothing_found: str, skipped: Sequence[dict] = ()):
        self.root = Path(root)
        self.skipped = list(skipped)
        if not dirs:
            if self.skipped:
                first = self.skipped[0]
                more = f" ({len(self.skipped) - 1} more subject folder(s) likewise)" if len(self.skipped) > 1 else ""
                raise DataReadError(first["path"], f"{first['reason']}{more}")
            raise DataReadError(self.root, nothing_found)
        self._dirs = {p.name: p for p in dirs}
        self._open_sequence = open_sequence
        self._open: dict[str, SequenceT] = {}

    def subjects(self) -> list[str]:
        return list(self._dirs)

    def sequence(self, name: str) -> SequenceT:
        if name not in self._open:
            if name not in self._dirs:
                for s in self.skipped:
                    if s["name"] == name:
                        raise DataReadError(s["path"], s["reason"])
                raise DataReadError(self.root / name, f"no such subject; available: {', '.join(self._dirs)}")
            self._open[name] = self._open_sequence(self._dirs[name])
        return self._open[name]

    def warnings(self) -> list[str]:
        """One line per skipped subject folder, naming the file that is missing or wrong; then the warnings of
        the subjects opened so far (e.g. image files no annotation lists)."""
        return ([f"skipped subject {s['name']}: {s['path']}: {s['reason']}" for s in self.skipped]
                + self.sequence_warnings(list(self._open)))

    def sequence_warnings(self, names: Iterable[str]) -> list[str]:
        """The warnings of these subjects' sequences (opening them), e.g. image files no annotation lists."""
        return [line for name in names for line in getattr(self.sequence(name), "warnings", list)()]


def skipped_subject(folder: Path, path: Path, reason: str) -> dict:
    return {"name": folder.name, "path": str(path), "reason": reason}


def camera_image_sizes(per_camera: Sequence[Iterable[Path]]) -> tuple[list[tuple[int, int]], list[dict]]:
    """Each camera's image size (H, W), and the probed files whose size differs from it.

    A camera's size is the size most of its probed frames have (ties broken by the size most common over all
    cameras of the subject), so one replaced image, even in frame 0, neither sets the camera's size nor gets a
    good image blamed for it. Unreadable files are skipped (they fail, named, when loaded).

    Args:
        per_camera: the image files to read headers of, per camera (e.g. its first frames).
    Returns:
        ``(sizes, odd)``: ``sizes[c]`` = (H, W); ``odd`` = ``{"path", "size", "expected"}`` per differing file.
    Raises:
        DataReadError: a camera none of whose probed images is readable (the first error).
    """
    headers: list[list[tuple[Path, tuple[int, int]]]] = []
    errors: list[DataReadError | None] = []
    for paths in per_camera:
        found, first_error = [], None
        for p in paths:
            try:
                found.append((p, image_size(p)))
            except DataReadError as exc:
                first_error = first_error or exc
        headers.append(found)
        errors.append(first_error)
    overall = Counter(size for cam in headers for _, size in cam)
    sizes, odd = [], []
    for found, error in zip(headers, errors):
        if not found:
            raise error or DataReadError(Path("."), "no images")
        counts = Counter(size for _, size in found)
        best = max(counts, key=lambda s: (counts[s], overall[s]))
        sizes.append(best)
        odd.extend({"path": str(p), "size": list(s), "expected": list(best)} for p, s in found if s != best)
    return sizes, odd


class ProbedImageSizes:
    """A sequence's camera image sizes, read from the headers of its first :data:`PROBE_FRAMES` frames' images
    (:func:`camera_image_sizes`), and its summary. The sequence names the files (:meth:`probed_images`) and has
    ``name``, ``num_cameras`` and ``num_frames``."""

    name: str
    num_cameras: int
    num_frames: int

    def probed_images(self, frames: int) -> list[list[Path]]:
        """Per camera, its image files of the first ``frames`` frames."""
        raise NotImplementedError

    @cached_property
    def _sizes(self) -> tuple[list[tuple[int, int]], list[dict]]:
        return camera_image_sizes(self.probed_images(PROBE_FRAMES))

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each camera: the size most of its first frames have (image headers only)."""
        return self._sizes[0]

    @property
    def odd_sized_images(self) -> list[dict]:
        """Probed images whose size differs from their camera's (``{"path", "size", "expected"}``)."""
        return self._sizes[1]

    def summary(self) -> SubjectSummary:
        return SubjectSummary(self.name, self.num_cameras, self.num_frames, self.image_sizes[0])
