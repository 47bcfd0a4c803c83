"""What every importer shares: the conversion being built (recipe, dataset registry, notes), the rule
helpers that declare how one key of the other tool converts, and the rendering of the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import UserError

Recipe = dict[str, Any]


@dataclass
class Conversion:
    recipe: Recipe = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """One line per key that was not carried over as it is: what was done about it."""
    converted: list[str] = field(default_factory=list)
    """The keys a rule converted (into the recipe, or into a note)."""
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Dataset registry entries the import wrote (tools that declare datasets inline, like axolotl); they
    are saved as dataset_info.json in data.dataset_dir."""
    source_dir: Path = Path(".")
    """The folder of the imported config (local data paths are also looked up from there)."""

    def set(self, path: str, value: Any) -> None:
        section, _, key = path.rpartition(".")
        target = self.recipe
        for part in filter(None, section.split(".")):
            target = target.setdefault(part, {})
        target[key] = value

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.recipe
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def note(self, key: str, text: str) -> None:
        self.notes.append(f"{key}: {text}")

    def convert(self, config: dict[str, Any], keys: dict[str, Rule]) -> None:
        """Apply each key's rule; keys without one are noted as not carried over."""
        unknown = []
        for key, value in config.items():
            rule = keys.get(key)
            if rule is None:
                unknown.append(key)
                continue
            if value is not None:  # null: the tool's default, kept by ftkit's
                rule(self, key, value, config)
            self.converted.append(key)
        for key in unknown:
            self.note(key, f"not carried over ({config[key]!r}): ftkit has no such setting")

    def write_registry(self, dataset_dir: Path) -> None:
        """Save the registry entries as dataset_dir/dataset_info.json; local file names, read relative to the
        working directory, become relative to dataset_dir."""
        import json
        import os

        from ftkit.atomic import atomic_write_text

        entries = {}
        for name, entry in self.registry.items():
            if "file_name" in entry:
                entry = entry | {
                    "file_name": os.path.relpath(Path(entry["file_name"]).resolve(), dataset_dir.resolve())
                }
            entries[name] = entry
        dataset_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            dataset_dir / "dataset_info.json", json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
        )

    def render(self, origin: str) -> str:
        """The recipe as YAML, headed by where it came from and the notes."""
        import yaml

        order = ["stage", "model", "adapter", "data", "train", "logging", "distributed"]
        recipe = {key: self.recipe[key] for key in order if key in self.recipe}
        recipe |= {key: value for key, value in self.recipe.items() if key not in recipe}
        header = [f"# Imported from {origin}."]
        if self.notes:
            header.append("# What was not carried over as it is:")
            header += [f"#   {note}" for note in self.notes]
        return "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)


Rule = Callable[[Conversion, str, Any, dict[str, Any]], None]
"""How one key converts: rule(conversion, key, value, the whole config)."""


def to(path: str, convert: Callable[[Any], Any] = lambda value: value) -> Rule:
    """The value goes to recipe key `path` (converted)."""

    def rule(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
        out.set(path, convert(value))

    return rule


def dropped(reason: str) -> Rule:
    """No ftkit equivalent, or nothing to do: noted with the reason."""

    def rule(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
        out.note(key, f"not carried over ({value!r}): {reason}")

    return rule


def deepspeed(presets: dict[str, str], tool: str) -> Rule:
    """A DeepSpeed config path: the tool's stock files (by file name) become ftkit's presets; any other file
    is kept as a path."""

    def rule(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
        name = Path(str(value)).name
        if name in presets:
            out.set("distributed.deepspeed", presets[name])
            out.note(key, f"{value} is {tool}'s stock file: ftkit's preset {presets[name]}")
        else:
            out.set("distributed.deepspeed", str(value))
            out.note(key, f"kept as a path ({value}): relative paths start from the directory ftkit runs in")

    return rule


def names(value: Any) -> list[str]:
    """A comma-separated string (or a list) as a list of names."""
    if isinstance(value, list):
        return [str(name) for name in value]
    return [name.strip() for name in str(value).split(",") if name.strip()] if value else []


def read_yaml(path: str | Path, tool: str) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a {tool} config (a YAML mapping of settings)")
    return config
