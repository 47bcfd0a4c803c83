"""`ftkit check`: validate a recipe and resolve everything that needs no weights (preflight.py).

Hub models and datasets are not fetched: one already in the local Hugging Face cache is reported as
cached, any other as unverified (not an error: the machine that trains may have the network). torch is
imported only on a machine with a GPU driver, to tell which precisions it runs.
"""

from __future__ import annotations

from ftkit.config import dump_recipe, load_recipe
from ftkit.preflight import preflight


def check(path: str, overrides: list[str], show_recipe: bool = True, device: str | None = None) -> int:
    recipe = load_recipe(path, overrides)
    if show_recipe:
        print("# resolved recipe")
        print(dump_recipe(recipe))
    found = preflight(recipe, device)
    print(f"# {path}: valid. What would run:")
    print("\n".join(found.lines))
    return 0
