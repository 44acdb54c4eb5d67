"""Command-line options checked before any work starts, each bad one reported in one line.

Numbers are checked by the commands' pydantic specs (``TrainSpec``, ``DistillConfig``,
``SynthConfig``, ...: the one source of their ranges); :func:`parse_options` turns a
``ValidationError`` into an :class:`~ghnerf.base.errors.OptionError` with one line per bad
option (spec field ``image_scale`` is option ``--image-scale``). Output folders and roots are
checked by the specs' field types (:mod:`ghnerf.base.spec_fields`); an output picture that is
not a spec field by the option parser :func:`output_image`. The CLI
prints both kinds the way it prints every :class:`~ghnerf.base.errors.GHNeRFError`: one
line each, exit code 2.
"""

from pathlib import Path
from typing import TypeVar

import typer
from pydantic import BaseModel, ValidationError

from ghnerf.base.errors import OptionError

M = TypeVar("M", bound=BaseModel)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def option_lines(exc: ValidationError) -> list[str]:
    """One line per bad field of ``exc`` (its first error), named as the command-line option."""
    lines: dict[str, str] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        if field in lines:
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if field:
            lines[field] = f"invalid option --{field.replace('_', '-')} {err['input']!r}: {msg}"
        else:
            lines[field] = f"invalid options: {msg}"
    return list(lines.values())


def parse_options(model: type[M], **values) -> M:
    """``model(**values)``, or :class:`OptionError` with one line per bad option."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise OptionError("\n".join(option_lines(exc))) from None


def output_image(value: str | Path) -> Path:
    """An image file to write: a .png / .jpg name, not an existing folder."""
    path = Path(value)
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give an image file name such as {path / 'preview.png'}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise typer.BadParameter(f"{path}: the file name must end in {', '.join(IMAGE_SUFFIXES)}")
    if path.parent.exists() and not path.parent.is_dir():
        raise typer.BadParameter(f"{path.parent} is a file, not a folder")
    return path
