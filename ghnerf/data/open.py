"""Layout detection and the single entry point :func:`open_dataset`."""

from pathlib import Path
from typing import Literal

from ghnerf.data import renderpeople, zju
from ghnerf.data.records import SubjectSummary
from ghnerf.data.renderpeople import RenderPeopleReader
from ghnerf.data.zju import ZJUMoCapReader
from ghnerf.errors import ConfigError, DataReadError

Layout = Literal["zju", "renderpeople"]
LAYOUTS: tuple[str, ...] = ("zju", "renderpeople")
Reader = ZJUMoCapReader | RenderPeopleReader


def detect_layout(path: str | Path) -> Layout:
    """Which real layout a folder (a dataset root or one subject) follows."""
    path = Path(path)
    if not path.is_dir():
        raise DataReadError(path, "dataset folder does not exist")
    if zju.is_sequence(path) or any(zju.is_sequence(p) for p in path.iterdir() if p.is_dir()):
        return "zju"
    if (renderpeople.is_sequence(path) or (path / renderpeople.HUMAN_LIST).is_file()
            or any(renderpeople.is_sequence(p) for p in path.iterdir() if p.is_dir())):
        return "renderpeople"
    raise DataReadError(path, "not a ZJU-MoCap folder (annots.npy) nor a RenderPeople folder "
                              "(human_list.txt / cameras.json + img/); pass --layout if it is one")


def open_dataset(path: str | Path, layout: str | None = None) -> Reader:
    """Open a dataset folder with the reader of its layout (detected when ``layout`` is None)."""
    layout = layout or detect_layout(path)
    if layout == "zju":
        return ZJUMoCapReader(path)
    if layout == "renderpeople":
        return RenderPeopleReader(path)
    raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def summarize(reader: Reader) -> dict:
    """The ``ghnerf data inspect --json`` object."""
    subjects: list[SubjectSummary] = [reader.sequence(s).summary() for s in reader.subjects()]
    return {
        "layout": reader.layout,
        "subjects": [{"name": s.name, "cameras": s.cameras, "frames": s.frames, "image_size": list(s.image_size)}
                     for s in subjects],
    }
