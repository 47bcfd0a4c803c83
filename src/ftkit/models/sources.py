"""Where a model, tokenizer or adapter comes from: a local folder or a hub id, decided before anything
loads, so that a mistyped local path is "no such local folder" at once instead of a minute of hub retries.

Nothing here imports torch or transformers: `ftkit check` and the start of `ftkit train` use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import UserError

SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")


def looks_like_path(name: str) -> bool:
    """True when `name` can only be meant as a local path: it is explicit (./, /, ~), has more than one
    slash, or starts with a folder that exists here (outputs/my-run, not meta-llama/Llama-3.2-1B)."""
    if name.startswith((".", "/", "~", "\\")) or name.endswith("/") or name.count("/") > 1 or "\\" in name:
        return True
    first = name.split("/", 1)[0]
    return "/" in name and Path(first).is_dir()


def _valid_hub_id(name: str) -> bool:
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        return True
    try:
        validate_repo_id(name)
    except ValueError:
        return False
    return True


def in_hub_cache(
    repo_id: str, filename: str, repo_type: str = "model", revision: str | None = None
) -> str | None:
    """The cached file's path, or None when it is not in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision, repo_type=repo_type)
    except ValueError:  # not a valid repo id
        return None
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Source:
    name: str
    local: Path | None
    """The folder, for a local source."""
    cached: bool = False
    """A hub id whose files are in the local cache."""

    def describe(self) -> str:
        if self.local is not None:
            return f"{self.name} (local)"
        if self.cached:
            return f"{self.name} (hub id, in the local cache)"
        return f"{self.name} (hub id; unverified offline: not in the local cache)"


def locate(name: str, key: str, marker: str, revision: str | None = None) -> Source:
    """Resolve `name` (the value of recipe key `key`) to a local folder holding `marker` (e.g.
    config.json) or a hub id (not fetched: the machine that trains may have the network). A missing local
    folder, a folder without `marker` and an impossible hub id are user errors."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{key} {name} is a file; give the folder that holds {marker}")
        if not (path / marker).is_file():
            raise UserError(f"{key} {name} exists but holds no {marker}: it is not a model folder")
        return Source(name, path)
    if looks_like_path(name) or not _valid_hub_id(name):
        raise UserError(
            f"{key} {name}: no such local folder. Check the path (relative paths start from the working "
            "directory), or train the run that writes it first"
        )
    return Source(name, None, in_hub_cache(name, marker, revision=revision) is not None)


def producing_recipe(name: str, folder: Path) -> Path | None:
    """A recipe in `folder` whose train.output_dir is `name` or holds it: the run that writes that model."""
    import yaml

    for candidate in sorted(folder.glob("*.y*ml")):
        try:
            values = yaml.safe_load(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        train = values.get("train") if isinstance(values, dict) else None
        output = train.get("output_dir") if isinstance(train, dict) else None
        if isinstance(output, str) and (Path(output) == Path(name) or Path(output) in Path(name).parents):
            return candidate
    return None


def check_weights(source: Source, key: str, allow_pickle: bool) -> None:
    """A local model folder must hold weights ftkit may load: safetensors, or pickle files when allowed."""
    if source.local is None:
        return
    safe = any(next(source.local.glob(pattern), None) for pattern in SAFE_WEIGHTS)
    pickled = [p.name for pattern in PICKLE_WEIGHTS for p in source.local.glob(pattern)]
    if safe or (pickled and allow_pickle):
        return
    if pickled:
        raise UserError(
            f"{key} {source.name} holds only pickle weights ({', '.join(sorted(pickled)[:3])}), which can run "
            "code when loaded. Convert them to safetensors, or set model.allow_pickle: true if you trust them"
        )
    raise UserError(f"{key} {source.name} holds a config.json but no weights (*.safetensors)")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from a file, or a user error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a JSON object")
    return data
