"""Turn pydantic validation errors into short messages that name the key, its location and a fix."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from ftkit.config.sections.base import ConfigConflict
from ftkit.config.types import literals_in, models_in

KeyPath = tuple[str | int, ...]
Locate = Callable[[KeyPath], str | None]


class _Walk:
    """Follow a pydantic error location through the model tree, dropping union-member tags."""

    def __init__(self, root: type[BaseModel], loc: tuple[Any, ...]) -> None:
        self.path: list[str | int] = []
        self.parent: type[BaseModel] | None = root  # the model that owns the last key
        self.annotation: Any = None
        self.siblings: list[type[BaseModel]] = []  # other members of a tagged union at the last step
        candidates: list[type[BaseModel]] = [root]
        for item in loc:
            if isinstance(item, int):
                self.path.append(item)
                continue
            owner = next((model for model in candidates if item in model.model_fields), None)
            if owner is None:
                # A union tag such as 'lora' or 'int', or a key unknown to the models (extra_forbidden).
                tagged = [m for m in candidates if m.__name__ == item or _tag_of(m) == item]
                if tagged:
                    self.siblings = [m for m in candidates if m not in tagged]
                    candidates = tagged
                    self.parent = tagged[0]
                    continue
                if _is_type_tag(item):
                    continue
                self.path.append(item)
                self.parent = candidates[0] if candidates else None
                self.annotation = None
                candidates = []
                continue
            self.parent = owner
            self.annotation = owner.model_fields[item].annotation
            self.path.append(item)
            candidates = models_in(self.annotation)

    @property
    def dotted(self) -> str:
        text = ""
        for item in self.path:
            text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else item)
        return text or "recipe"


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    values = literals_in(field.annotation)
    return values[0] if len(values) == 1 else None


def _is_type_tag(item: str) -> bool:
    return item in {"int", "float", "str", "bool", "list[str]", "none"} or item.startswith(
        ("literal[", "list[")
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _section_fields(root: type[BaseModel]) -> dict[str, list[str]]:
    """For every section model reachable from the root: its dotted path to the list of its keys."""
    out: dict[str, list[str]] = {}
    for name, field in root.model_fields.items():
        for model in models_in(field.annotation):
            out.setdefault(name, []).extend(model.model_fields)
    return out


def _unknown_key(walk: _Walk, root: type[BaseModel]) -> str:
    key = str(walk.path[-1])
    options = list(walk.parent.model_fields) if walk.parent is not None else []
    hint = _suggest(key, options)
    tagged_owner = next((m for m in walk.siblings if key in m.model_fields), None)
    if not hint and tagged_owner is not None and walk.parent is not None:
        section = walk.dotted.rsplit(".", 1)[0]
        return (
            f"{walk.dotted} only applies with {section}.type: {_tag_of(tagged_owner)} "
            f"(this recipe has {section}.type: {_tag_of(walk.parent)}); remove it or change the type"
        )
    if not hint:
        owners = [f"{section}.{key}" for section, keys in _section_fields(root).items() if key in keys]
        if owners:
            hint = f" ({key} belongs in {owners[0].rsplit('.', 1)[0]}: {owners[0]})"
    if not hint and options:
        hint = f"; valid keys: {', '.join(options)}"
    return f"unknown key {walk.dotted}{hint}"


def _message(error: dict[str, Any], walk: _Walk, root: type[BaseModel]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(walk, root)
    if kind == "missing":
        return f"{walk.dotted} is required"
    if kind in ("literal_error", "enum"):
        allowed = literals_in(walk.annotation) if walk.annotation is not None else []
        options = ", ".join(str(v) for v in allowed) or error.get("ctx", {}).get("expected", "")
        hint = _suggest(str(value), [str(v) for v in allowed])
        return f"{walk.dotted} = {_show(value)} is not allowed{hint}; choose one of: {options}"
    if kind == "union_tag_invalid":
        allowed = error.get("ctx", {}).get("expected_tags", "")
        return (
            f"{walk.dotted}.type = {_show(error['ctx'].get('tag'))} is not allowed; choose one of: {allowed}"
        )
    ctx_error = error.get("ctx", {}).get("error")
    if isinstance(ctx_error, ConfigConflict):
        return str(ctx_error)
    message = error["msg"].removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing") or "greater" in kind or "less" in kind:
        return f"{walk.dotted} = {_show(value)}: {message[0].lower() + message[1:]}"
    return f"{walk.dotted}: {message}"


def _conflict_location(error: dict[str, Any], locate: Locate) -> str | None:
    ctx_error = error.get("ctx", {}).get("error")
    if not isinstance(ctx_error, ConfigConflict):
        return None
    for path in ctx_error.paths:
        location = locate(tuple(path.split(".")))
        if location:
            return location
    return None


def render(exc: ValidationError, root: type[BaseModel], locate: Locate) -> list[str]:
    """One line per distinct problem: `<file:line>: <key> <problem>`."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for error in exc.errors(include_url=False):
        walk = _Walk(root, tuple(error["loc"]))
        text = _message(error, walk, root)
        location = _conflict_location(error, locate) or (locate(tuple(walk.path)) if walk.path else None)
        line = f"{location}: {text}" if location else text
        dotted = walk.dotted
        if dotted in seen and error["type"] not in ("extra_forbidden", "missing"):
            # Union members each report the same key; keep the first explanation and list the others.
            index = seen[dotted]
            if text not in problems[index]:
                problems[index] += f"; or {text.split(': ', 1)[-1]}"
            continue
        seen[dotted] = len(problems)
        problems.append(line)
    return problems
