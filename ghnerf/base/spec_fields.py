"""Building blocks of the user-facing specs (pydantic models): output paths checked where they are declared, and a
field reused from another spec with its range and help, so an option is declared once.

The command line and the flows' parameters are generated from the specs (:mod:`ghnerf.app.spec_options`).
"""

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic.fields import FieldInfo


def check_output_folder(value: str) -> str:
    """A folder to write into: new or existing, never an existing file."""
    if Path(value).exists() and not Path(value).is_dir():
        raise ValueError(f"{value} is a file, not a folder; give a new or existing folder")
    return value


def check_output_root(value: str) -> str:
    """A storage root to write into: an fsspec URL, or a local folder as :func:`check_output_folder`."""
    return value if "://" in value else check_output_folder(value)


OutputFolder = Annotated[str, AfterValidator(check_output_folder)]
OutputRoot = Annotated[str, AfterValidator(check_output_root)]


def field_from(model: type[BaseModel], name: str, **overrides: Any) -> Any:
    """Field ``name`` of ``model`` (type constraints, default, help) with ``overrides``: another ``default`` or
    ``description``, or a tighter constraint (``ge=2``: both bounds apply). A spec that exposes an option of a
    lower-level config declares it by reference, not again."""
    attributes = {k: overrides.pop(k) for k in ("default", "description") if k in overrides}
    extra = [Field(**overrides)] if overrides else []
    return FieldInfo.merge_field_infos(model.model_fields[name], *extra, **attributes)
