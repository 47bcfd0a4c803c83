"""Recipe loading and validation. Importing this package does not import torch or transformers."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ftkit.config.errors import render
from ftkit.config.loader import display_path, load_raw
from ftkit.config.recipe import Recipe
from ftkit.config.redact import redact
from ftkit.errors import RecipeError

__all__ = ["Recipe", "dump_recipe", "load_recipe"]


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, merge, interpolate and validate a recipe; problems raise RecipeError (exit code 2)."""
    raw = load_raw(path, overrides)
    try:
        return Recipe.model_validate(raw.values)
    except ValidationError as exc:
        raise RecipeError(render(exc, Recipe, raw.where), display_path(raw.path)) from None


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, with secrets redacted: what `ftkit check` prints and runs save."""
    return yaml.safe_dump(redact(recipe.model_dump(mode="json")), sort_keys=False, allow_unicode=True)
