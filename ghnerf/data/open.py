"""Layout detection and the single entry point :func:`open_dataset`."""

from pathlib import Path
from typing import Literal

from ghnerf.data import renderpeople, zju
from ghnerf.data.records import SubjectSummary
from ghnerf.data.renderpeople import RenderPeopleReader
from ghnerf.data.zju import ZJUMoCapReader
from ghnerf.base.errors import ConfigError, DataReadError

Layout = Literal["zju", "renderpeople"]
LAYOUTS: tuple[str, ...] = ("zju", "renderpeople")
Reader = ZJUMoCapReader | RenderPeopleReader


def detect_layout(path: str | Path) -> Layout:
    """Which real layout a folder (a dataset root or one subject) follows."""
    path = Path(path)
    if not path.is_dir():
        raise DataReadError(path, "dataset folder does not exist")
    subs = [p for p in path.iterdir() if p.is_dir()]
    if zju.looks_like_sequence(path) or any(zju.looks_like_sequence(p) for p in subs):
        return "zju"
    if (renderpeople.looks_like_sequence(path) or (path / renderpeople.HUMAN_LIST).is_file()
            or any(renderpeople.looks_like_sequence(p) for p in subs)):
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
    """The ``ghnerf data inspect --json`` object.

    ``skipped``: folders that look like subjects but cannot be read (``name``, ``path`` of the missing or wrong
    file, ``reason``); ``odd_sized_images``: probed images whose size differs from their camera's.
    """
    sequences = [reader.sequence(s) for s in reader.subjects()]
    subjects: list[SubjectSummary] = [seq.summary() for seq in sequences]
    return {
        "layout": reader.layout,
        "subjects": [{"name": s.name, "cameras": s.cameras, "frames": s.frames, "image_size": list(s.image_size)}
                     for s in subjects],
        "skipped": reader.skipped,
        "odd_sized_images": [odd for seq in sequences for odd in seq.odd_sized_images],
    }


def dataset_warnings(reader: Reader, summary: dict | None = None) -> list[str]:
    """One line per skipped subject folder (and per odd-sized image, given a :func:`summarize` result)."""
    lines = reader.warnings()
    for odd in (summary or {}).get("odd_sized_images", []):
        lines.append(f"{odd['path']}: image is {odd['size'][1]}x{odd['size'][0]} (WxH) but the other images of its "
                     f"camera are {odd['expected'][1]}x{odd['expected'][0]}; it will fail when loaded: replace it")
    return lines
