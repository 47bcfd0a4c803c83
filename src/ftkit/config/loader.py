"""Read a recipe: safe YAML through OmegaConf, `base:` inheritance, `${...}` interpolation, dotlist overrides.

Besides the merged values, loading records where every key was set (file and line, or the command
line), so that validation errors can point at the line to edit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftkit.errors import RecipeError

KeyPath = tuple[str | int, ...]
COMMAND_LINE = "command line"


@dataclass
class RawRecipe:
    """Merged, interpolated recipe values before validation, and where each key came from."""

    values: dict[str, Any]
    path: Path
    locations: dict[KeyPath, str] = field(default_factory=dict)

    def where(self, key: KeyPath) -> str | None:
        """Location of `key`, or of its closest parent that has one."""
        for end in range(len(key), 0, -1):
            location = self.locations.get(tuple(key[:end]))
            if location:
                return location
        return None


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.path.normpath(path)


def _locations(node: yaml.Node, prefix: KeyPath, source: str, out: dict[KeyPath, str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            out[key] = f"{source}:{key_node.start_mark.line + 1}"
            _locations(value_node, key, source, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, index)
            out[key] = f"{source}:{item.start_mark.line + 1}"
            _locations(item, key, source, out)


def _read_yaml(path: Path, what: str = "recipe file") -> tuple[DictConfig, dict[KeyPath, str]]:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{what} not found: {shown}"]) from None
    except UnicodeDecodeError as exc:
        raise RecipeError([f"{shown}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8"]) from None
    except OSError as exc:
        raise RecipeError([f"cannot read {what} {shown}: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        config = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError([f"{where}: not valid YAML ({problem})"]) from None
    except OmegaConfBaseException as exc:
        raise RecipeError([f"{shown}: {_first_line(exc)}"]) from None
    if not isinstance(config, DictConfig) or (node is not None and not isinstance(node, yaml.MappingNode)):
        raise RecipeError([f"{shown}: a recipe is a mapping of sections (stage, model, data, train, ...)"])
    locations: dict[KeyPath, str] = {}
    if node is not None:
        _locations(node, (), shown, locations)
    return config, locations


def _base_paths(config: DictConfig, path: Path) -> list[Path]:
    base = config.get("base")
    if base is None:
        return []
    items = [base] if isinstance(base, str) else list(base) if OmegaConf.is_list(base) else None
    if not items or not all(isinstance(item, str) and item for item in items):
        raise RecipeError([f"{display_path(path)}: base must be a recipe path or a list of recipe paths"])
    return [(path.parent / item) for item in items]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0]


def _load_tree(path: Path, chain: tuple[Path, ...]) -> tuple[DictConfig, dict[KeyPath, str]]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(display_path(p) for p in (*chain, resolved))
        raise RecipeError([f"base recipes form a cycle: {cycle}"])
    config, locations = _read_yaml(path, "base recipe" if chain else "recipe file")
    merged = OmegaConf.create({})
    merged_locations: dict[KeyPath, str] = {}
    for base_path in _base_paths(config, path):
        base_config, base_locations = _load_tree(base_path, (*chain, resolved))
        merged = _merge(merged, base_config)
        merged_locations = _overlay_locations(merged_locations, base_locations)
    if "base" in config:
        del config["base"]
        locations = {key: loc for key, loc in locations.items() if key[:1] != ("base",)}
    merged = _merge(merged, config)
    return merged, _overlay_locations(merged_locations, locations)


def _overlay_locations(below: dict[KeyPath, str], above: dict[KeyPath, str]) -> dict[KeyPath, str]:
    """Locations after `above`'s layer is merged over `below`'s: a key the layer sets to anything but a
    mapping replaces the whole subtree, so the lower layer's locations inside it are gone."""
    mappings = {key[:-1] for key in above if key and isinstance(key[-1], str)}

    def survives(key: KeyPath) -> bool:
        for end in range(1, len(key)):
            if key[:end] in above and (key[:end] not in mappings or isinstance(key[end], int)):
                return False  # inside a value the layer replaced (lists always replace)
        return True

    return {key: where for key, where in below.items() if survives(key)} | above


def _merge(into: DictConfig, layer: DictConfig) -> DictConfig:
    """`layer` over `into`: mappings merge key by key; anything else (a list, a scalar, a mapping that
    replaces a list) replaces what was there, as a child recipe or an override means it to."""

    def overlay(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
        merged = dict(below)
        for key, value in above.items():
            both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = overlay(merged[key], value) if both_mappings else value
        return merged

    plain = overlay(
        OmegaConf.to_container(into), OmegaConf.to_container(layer)
    )  # interpolations kept as text
    return OmegaConf.create(plain)


def _parse_overrides(overrides: list[str]) -> tuple[DictConfig, dict[KeyPath, str]]:
    cleaned = []
    for item in overrides:
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator or not key or any(not part for part in key.split(".")):
            raise RecipeError([f"override {item!r} is not of the form section.key=value (e.g. train.seed=1)"])
        if any(part.isdigit() or "[" in part for part in key.split(".")):
            raise RecipeError(
                [f"override {item!r} sets one list item; set the whole list instead, e.g. data.train=[a,b]"]
            )
        cleaned.append(f"{key}={value}")
    try:
        config = OmegaConf.from_dotlist(cleaned)
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        problem = getattr(exc, "problem", None) or _first_line(exc)
        raise RecipeError([f"cannot parse overrides {' '.join(overrides)}: {problem}"]) from None
    locations: dict[KeyPath, str] = {}
    for item in cleaned:
        locations[tuple(item.split("=", 1)[0].split("."))] = f"{COMMAND_LINE} ({item})"
    return config, locations


def load_raw(path: str | Path, overrides: list[str] | None = None) -> RawRecipe:
    """Load the recipe at `path` with its bases and overrides; interpolations are resolved."""
    path = Path(path)
    config, locations = _load_tree(path, ())
    if overrides:
        override_config, override_locations = _parse_overrides(overrides)
        config = _merge(config, override_config)
        for key, location in override_locations.items():
            # An override owns its own key, and the sections above it only when the recipe lacks them.
            locations[key] = location
            for end in range(1, len(key)):
                locations.setdefault(key[:end], location)
    try:
        values = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = _first_line(exc)
        where = f"{key}: " if key else ""
        raise RecipeError([f"{where}cannot resolve interpolation: {reason}"], display_path(path)) from None
    assert isinstance(values, dict)
    return RawRecipe(values=values, path=path, locations=locations)
