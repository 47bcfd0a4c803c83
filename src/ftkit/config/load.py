"""Recipe loading: the YAML (loader.py) validated into the Recipe of the current stage table."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from ftkit.config.errors import render
from ftkit.config.loader import display_path, load_raw
from ftkit.config.recipe import Recipe, recipe_model
from ftkit.config.redact import redact, redacted_keys
from ftkit.errors import RecipeError

log = logging.getLogger(__name__)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, merge, interpolate and validate a recipe; problems raise RecipeError (exit code 2)."""
    raw = load_raw(path, overrides)
    # The edge: a secret interpolated into the recipe (e.g. ${oc.env:WANDB_API_KEY} in a run name) is
    # replaced here, before validation messages, output files or any library can see it.
    for key in redacted_keys(raw.values):
        log.warning("%s holds a secret from the environment; ftkit uses it redacted", key)
    raw.values = redact(raw.values)
    given, chosen = raw.values, []
    if raw.values.get("stage") == "auto":  # chosen here, once: inner code sees a concrete stage
        from ftkit.data.tasks import choose_stage

        stage, reason = choose_stage(raw.values.get("data") or {})
        raw.values = {**raw.values, "stage": stage}
        chosen.append(reason)
    grpo = raw.values.get("grpo") or {}
    if raw.values.get("stage") == "grpo" and not grpo.get("reward_funcs"):
        from ftkit.data.tasks import choose_rewards

        rewards, why = choose_rewards(raw.values.get("data") or {})
        if rewards:
            raw.values = {**raw.values, "grpo": {**grpo, "reward_funcs": rewards}}
            chosen.append(why)
    model = recipe_model()
    try:
        recipe = model.model_validate(raw.values)
    except ValidationError as exc:
        raise RecipeError(render(exc, model, raw.where), display_path(raw.path)) from None
    recipe._given = given
    recipe._path = str(raw.path)
    recipe._chosen = chosen
    return recipe


def dump_recipe(recipe: Recipe, defaults: bool = True) -> str:
    """The recipe as YAML with secrets redacted. With defaults, every key and the value it resolved to
    (what `ftkit check` prints); without, the keys as given (bases merged, overrides applied), which
    re-runs the same way even when other values change (what runs save as recipe.yaml)."""
    values = recipe.resolved_values() if defaults or recipe._given is None else recipe._given
    return yaml.safe_dump(redact(values), sort_keys=False, allow_unicode=True)
