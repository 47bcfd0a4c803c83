"""The files a run directory holds, and reading them back: run.json, the base an adapter belongs to.

Kept apart from rundir.py (which writes runs from a recipe) so that loading a trained model needs no
recipe: a GRPO reward model, an export, an eval of a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftkit.errors import UserError

RUN_FILE = "run.json"
RECIPE_FILE = "recipe.yaml"
"""The recipe as given (bases merged, overrides applied): `ftkit train <output_dir>/recipe.yaml` re-runs it."""
RESOLVED_RECIPE_FILE = "recipe.resolved.yaml"
"""Every key with the value this run used, defaults included (what a resume is compared with)."""
CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_CHECKPOINT_MARKER = "trainer_state.json"
"""The Trainer writes it last into a checkpoint: a checkpoint without it was cut short."""
FINAL_STAGING = ".final.tmp"
FINAL_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
SCRATCH_BASE = "base_model"
"""Where a from-scratch LoRA run keeps the random base its adapter belongs to."""
INITIAL_ADAPTER = "initial_adapter"
"""A pissa/olora adapter as initialized: what converts the trained one to the original base."""


def read_run(output_dir: str | Path) -> dict[str, Any] | None:
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}); it is not an ftkit run record") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not an ftkit run record")
    return data


def recorded_base(run_dir: str | Path, run: dict[str, Any] | None = None) -> str | None:
    """The base model a run trained on, as its run.json records it (a from-scratch base inside the run
    as its path), else the base named in its adapter_config.json; None when neither says."""
    run_dir = Path(run_dir)
    run = read_run(run_dir) if run is None else run
    if run and run.get("base_model"):
        inside = run_dir / run["base_model"]
        return str(inside) if inside.exists() else run["base_model"]
    config_path = run_dir / "adapter_config.json"
    if config_path.is_file():
        try:
            base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (OSError, ValueError):
            return None
        return base or None
    return None
