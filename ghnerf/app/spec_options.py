"""Command-line options and flow parameters generated from the specs: each option is declared once.

A user-facing spec (:class:`~ghnerf.student.run.TrainSpec`, :class:`~ghnerf.app.distill_config.DistillConfig`, ...) is a
pydantic model whose fields carry the default, the range, the help text (``description``) and, in its validators,
the cross-field rules. :func:`spec_command` turns such a model into a typer command (field ``image_scale`` is option
``--image-scale``) and :func:`spec_parameters` into the parameters of a Prefect flow, so neither repeats a field.

How a field appears on the command line when not as itself is said in the field, ``json_schema_extra={"cli": ...}``:

* ``"argument"``: a positional argument;
* ``"pairs"``: a ``dict`` field typed as a repeatable ``KEY=VALUE`` option (named by ``"option"``; values decoded
  as JSON unless ``"json": False``), e.g. ``storage_options`` as ``--storage-option endpoint_url=...``;
* ``"hidden"``: not on the command line (set by the program, e.g. a resume flag of a flow).
"""

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ghnerf.app.options import parse_options
from ghnerf.base.key_values import parse_key_values


def cli_kind(field: FieldInfo) -> dict:
    extra = field.json_schema_extra
    cli = extra.get("cli", {}) if isinstance(extra, dict) else {}
    return {"as": cli} if isinstance(cli, str) else dict(cli)


def option_name(name: str, field: FieldInfo) -> str:
    """The command-line spelling of field ``name`` (without the dashes)."""
    return cli_kind(field).get("option", name.replace("_", "-"))


def default_of(field: FieldInfo) -> Any:
    """The field's default, or ``inspect.Parameter.empty`` for a required field."""
    if field.default_factory is not None:
        return field.default_factory()
    return inspect.Parameter.empty if field.default is PydanticUndefined else field.default


def spec_parameters(spec: type[BaseModel]) -> list[inspect.Parameter]:
    """One keyword parameter per field of ``spec``, with its annotation and default (required fields first)."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default_of(f),
                                annotation=Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation)
              for name, f in spec.model_fields.items()]
    return sorted(params, key=lambda p: p.default is not inspect.Parameter.empty)


def _cli_type(annotation: Any) -> tuple[Any, bool]:
    """(the type typer parses, whether None is allowed) for a field's annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _cli_type(args[0])
    if origin in (Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _cli_type(rest[0])[0], optional
        return str, optional  # e.g. a number or "auto": typed as text, the spec converts it
    if origin is Literal:
        return str, False
    if origin is list and args and args[0] is str:
        return list[str], False  # a repeatable option
    if origin is tuple and args and all(_cli_type(a)[0] is int for a in args):
        return tuple[(int,) * len(args)], False  # e.g. H W
    if annotation in (bool, int, float, str, Path):
        return annotation, False
    raise TypeError(f"no command-line form for a field of type {annotation!r}; say one with json_schema_extra")


def _cli_parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    kind = cli_kind(field)
    help_text = field.description or ""
    default = default_of(field)
    if kind.get("as") == "pairs":
        info = typer.Option(f"--{option_name(name, field)}", help=help_text + " (KEY=VALUE, repeatable)")
        annotation = Annotated[Optional[list[str]], info]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    base, optional = _cli_type(field.annotation)
    if optional:
        base = Optional[base]
    if kind.get("as") == "argument":
        info = typer.Argument(help=help_text)
    elif "option" in kind:
        info = typer.Option(f"--{kind['option']}", help=help_text)
    else:  # named after the parameter (booleans get --name/--no-name)
        info = typer.Option(help=help_text)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                             default=inspect.Parameter.empty if default is inspect.Parameter.empty else default,
                             annotation=Annotated[base, info])


def cli_fields(spec: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields of ``spec`` that are command-line options or arguments."""
    return {n: f for n, f in spec.model_fields.items() if cli_kind(f).get("as") != "hidden"}


def spec_from_cli(spec: type[BaseModel], values: dict) -> BaseModel:
    """The spec from the values typer parsed (paths as text, ``KEY=VALUE`` lists as dicts); bad options raise
    :class:`~ghnerf.base.errors.OptionError`, one line each."""
    fields = cli_fields(spec)
    converted = {}
    for name, value in values.items():
        field = fields[name]
        kind = cli_kind(field)
        if kind.get("as") == "pairs":
            value = parse_key_values(value, option_name(name, field), kind.get("example", "key=value"),
                                     decode_json=kind.get("json", True))
            if value is None and default_of(field) is not None:
                continue  # none given: the field's own default (e.g. an empty dict)
        elif isinstance(value, Path):
            value = str(value)
        converted[name] = value
    return parse_options(spec, **converted)


def spec_command(app: typer.Typer, name: str, spec: type[BaseModel], **command_kwargs: Any) -> Callable:
    """Decorator: register ``fn(spec_instance, **own_options)`` as command ``name`` whose options are the fields of
    ``spec`` (plus ``fn``'s own keyword parameters, for options that are not part of the spec, such as an output
    picture); ``command_kwargs`` go to ``app.command`` (e.g. ``cls``)."""

    def decorate(fn: Callable) -> Callable:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in list(inspect.signature(fn).parameters.values())[1:]]
        fields = cli_fields(spec)
        generated = [_cli_parameter(n, f) for n, f in fields.items()]
        params = sorted(generated + own, key=lambda p: p.default is not inspect.Parameter.empty)

        def command(**values):
            own_values = {p.name: values.pop(p.name) for p in own}
            return fn(spec_from_cli(spec, values), **own_values)

        command.__signature__ = inspect.Signature(params)
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        command.__wrapped_spec__ = spec
        app.command(name, **command_kwargs)(command)
        return command

    return decorate
