"""Flow parameters generated from a spec: a flow declares none of its own (:mod:`ghnerf.app.spec_options`)."""

import inspect
from collections.abc import Callable

from pydantic import BaseModel

from ghnerf.app.spec_options import spec_parameters


def parameters_of(spec: type[BaseModel]) -> Callable[[Callable], Callable]:
    """Decorator (under ``@flow``): ``fn(**params)`` takes exactly the fields of ``spec`` as its parameters, with
    their types and defaults; Prefect reads them from the signature (deployment schema, UI form, validation), and
    each one's description from the docstring's ``Args:`` section, written here from the fields' descriptions."""

    def decorate(fn: Callable) -> Callable:
        returns = inspect.signature(fn).return_annotation
        fn.__signature__ = inspect.Signature(spec_parameters(spec), return_annotation=returns)
        described = [f"    {name}: {' '.join(f.description.split())}" for name, f in spec.model_fields.items()
                     if f.description]
        fn.__doc__ = "\n".join([inspect.cleandoc(fn.__doc__ or ""), "", "Args:", *described])
        return fn

    return decorate
