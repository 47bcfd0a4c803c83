"""Walking type annotations of the recipe schema: the concrete types, section models and literal choices
an annotation holds. Used by the error messages (config/errors.py) and the reference (reference.py)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel


def unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (Optional, unions, Annotated, list elements removed)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in unwrap(arg)]
    return [annotation]


def models_in(annotation: Any) -> list[type[BaseModel]]:
    found = []
    for candidate in unwrap(annotation):
        origin = typing.get_origin(candidate)
        if origin is list:
            found.extend(models_in(typing.get_args(candidate)[0]))
        elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
            found.append(candidate)
    return found


def literals_in(annotation: Any) -> list[Any]:
    values = []
    for candidate in unwrap(annotation):
        origin = typing.get_origin(candidate)
        if origin is list:
            values.extend(literals_in(typing.get_args(candidate)[0]))
        elif origin is Literal:
            values.extend(typing.get_args(candidate))
    return values
