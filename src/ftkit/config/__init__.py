"""Recipe loading and validation. Importing this package does not import torch or transformers.

`Recipe`, `load_recipe` and `dump_recipe` are imported on first use: the Recipe is composed from the
stage table, whose stage modules declare their own sections with `ftkit.config.sections`, so this
package must not import the recipe when a section module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftkit.config.load import dump_recipe, load_recipe
    from ftkit.config.recipe import Recipe

__all__ = ["Recipe", "dump_recipe", "load_recipe"]


def __getattr__(name: str) -> Any:
    if name == "Recipe":
        from ftkit.config.recipe import Recipe

        return Recipe
    if name in ("load_recipe", "dump_recipe"):
        from ftkit.config import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
