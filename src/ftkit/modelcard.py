"""The model card (README.md) a run writes beside its weights: what was trained, from which base, on
which data, with which recipe, with which results, and how to use it. It replaces peft's template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftkit import __version__
from ftkit.atomic import atomic_write_text
from ftkit.config import Recipe
from ftkit.rundir import RECIPE_FILE, RESOLVED_RECIPE_FILE, SCRATCH_BASE
from ftkit.stages import stage_for
from ftkit.summary import MODEL_CARD, RunSummary


def _front_matter(recipe: Recipe, base: str) -> str:
    meta: dict[str, Any] = {
        "library_name": "peft" if recipe.adapter.type == "lora" else "transformers",
        "base_model": base,
        "tags": ["ftkit", recipe.stage, recipe.adapter.type],
        "pipeline_tag": "text-generation",
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _method(recipe: Recipe) -> str:
    adapter = recipe.adapter
    if adapter.type == "lora":
        variant = " (DoRA)" * adapter.use_dora + " (rsLoRA)" * adapter.use_rslora
        targets = (
            adapter.target_modules
            if isinstance(adapter.target_modules, str)
            else ", ".join(adapter.target_modules)
        )
        return (
            f"LoRA{variant}, r={adapter.r}, alpha={adapter.alpha:g}, dropout={adapter.dropout}, on {targets}"
        )
    if adapter.type == "freeze":
        return f"the last {adapter.trainable_layers} decoder layers (others frozen)"
    return "every weight (full fine-tuning)"


def _data_rows(data: dict[str, Any]) -> list[str]:
    rows = ["| dataset | source | rows | examples |", "|---|---|---|---|"]
    for dataset in data.get("datasets", []):
        rows.append(
            f"| {dataset['name']} | {dataset['source']} | {dataset['rows']:,} | {dataset['examples']:,} |"
        )
    for name, split in data.get("splits", {}).items():
        rows.append(
            f"| **{name} split** | | | {split['examples']:,} ({split['tokens']:,} tokens, {split['trained_tokens']:,} trained) |"
        )
    return rows


def model_card(recipe: Recipe, run: dict[str, Any], summary: RunSummary) -> str:
    base = run.get("base_model") or recipe.model.name_or_path
    shown_base = f"`{base}`"
    if base == SCRATCH_BASE and recipe.model.from_scratch:
        shown_base = (
            f"the random initial weights saved in `{SCRATCH_BASE}/` ({recipe.model.name_or_path} config)"
        )
    elif base == SCRATCH_BASE:
        shown_base = f"`{recipe.model.name_or_path}` as LoftQ quantized it, saved in `{SCRATCH_BASE}/`"
    lines = [
        _front_matter(recipe, base),
        f"# {recipe.logging.run_name}",
        "",
        f"Trained with ftkit {__version__}: stage `{recipe.stage}` on {shown_base}, training "
        f"{_method(recipe)}. Chat template: `{recipe.model.template or 'none'}`.",
        "",
        "## Results",
        "",
    ]
    if summary.first is not None and summary.last is not None:
        lines.append(
            f"- {summary.signal}: {summary.first:.4g} at the first log, {summary.last:.4g} at step {summary.steps}"
        )
    lines += [f"- {key}: {value:.4g}" for key, value in summary.evaluation.items()]
    if summary.tokens:
        lines.append(f"- tokens processed: {summary.tokens:,}")
    lines += ["", "## Data", "", *_data_rows(run.get("data", {})), ""]
    saved = f"{recipe.train.output_dir.rstrip('/')}/{RECIPE_FILE}"
    commands = [
        *(
            [f"ftkit export {saved}   # merge the adapter into the base model"]
            if recipe.adapter.type == "lora"
            else []
        ),
        *([f"ftkit chat {saved}"] if recipe.model.template and stage_for(recipe).head.generates else []),
        *([f"ftkit eval {saved}"] if recipe.data.eval or recipe.data.val_size is not None else []),
    ]
    lines += [
        "## Recipe",
        "",
        f"`{RECIPE_FILE}` is the recipe as given, `{RESOLVED_RECIPE_FILE}` every key with the value used; "
        "`run.json` records versions, device, precision, parameter counts and data counts; `loss.png` plots "
        "the run. Its paths are relative to the folder training ran in; from there:",
        "",
        "```bash",
        *commands,
        "```",
    ]
    if recipe.stage == "dpo" and recipe.adapter.type == "lora":
        lines += [
            "",
            "`ref/` holds the reference policy of DPO: the adapter as it was when training started (with a new "
            "adapter, the base model itself). Only the adapter at the top level is the trained one.",
        ]
    return "\n".join(lines) + "\n"


def write_model_card(
    output_dir: str | Path, recipe: Recipe, run: dict[str, Any], summary: RunSummary
) -> None:
    atomic_write_text(Path(output_dir) / MODEL_CARD, model_card(recipe, run, summary))
