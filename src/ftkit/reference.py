"""Generate the recipe and registry reference (docs/recipe-reference.md) from the schemas, so the docs
cannot drift from the code.

    python -m ftkit.reference > docs/recipe-reference.md
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ftkit.config.recipe import Recipe
from ftkit.data.registry import DatasetSpec


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "see section"
    return f"`{value!r}`" if value not in (None, [], {}) else f"`{value}`"


def _models(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or origin in (Union, types.UnionType) or origin is list:
        for arg in typing.get_args(annotation):
            found += _models(arg)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    return found


def _table(model: type[BaseModel]) -> list[str]:
    lines = [
        f"### {model.__name__}",
        "",
        (model.__doc__ or "").strip(),
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        description = (field.description or "").replace("\n", " ").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return [*lines, ""]


def _section(root: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    lines: list[str] = []
    queue: list[type[BaseModel]] = [root]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += _table(model)
        for field in model.model_fields.values():
            queue += [m for m in _models(field.annotation) if m not in seen]
    return lines


def reference() -> str:
    seen: set[type[BaseModel]] = set()
    lines = [
        "# Recipe reference",
        "",
        "Generated from the schemas by `make docs` (`python -m ftkit.reference`); do not edit by hand.",
        "",
        "## Recipes",
        "",
        "Every section rejects unknown keys. Relative paths are relative to the working directory, except",
        "`base:`, which is relative to the recipe file that names it.",
        "",
        *_section(Recipe, seen),
        "## Dataset registry entries",
        "",
        "Entries of `<data.dataset_dir>/dataset_info.json`, keyed by dataset name. LLaMA-Factory's fields are",
        "accepted as they are; `prompt_format`, `response_format`, `system`, `where` and `bidirectional` are",
        "ftkit's. Unknown fields are errors.",
        "",
        *_section(DatasetSpec, seen),
    ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
