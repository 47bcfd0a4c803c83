"""`ftkit export`: merge a LoRA adapter into its base model and save a standard transformers directory.

The output is written to a temporary sibling and renamed into place, so an interrupted export never
leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.atomic import atomic_directory
from ftkit.config import Recipe
from ftkit.errors import UserError
from ftkit.rundir import read_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRequest:
    base: str | None
    """Base model; None: the one recorded with the adapter."""
    adapter: str
    out: str
    dtype: str = "auto"
    shard_size: str = "5GB"
    force: bool = False
    template: str | None = None
    """Chat template the adapter was trained with; None: the one its run.json records."""

    @classmethod
    def from_recipe(cls, recipe: Recipe, force: bool = False) -> ExportRequest:
        export = recipe.export
        assert export.adapter_dir and export.output_dir  # filled by the recipe validator
        if recipe.adapter.type != "lora":
            raise UserError(
                f"adapter.type is {recipe.adapter.type}: the run saved a full model in {recipe.train.output_dir}, "
                "there is no adapter to merge"
            )
        return cls(
            None,
            export.adapter_dir,
            export.output_dir,
            export.dtype,
            export.shard_size,
            force,
            recipe.model.template,
        )


def resolve_base(request: ExportRequest) -> str:
    """The base model of the adapter: explicit, else the run's record, else adapter_config.json."""
    if request.base:
        return request.base
    adapter = Path(request.adapter)
    run = read_run(adapter)
    if run and run.get("base_model"):
        recorded = adapter / run["base_model"]
        return str(recorded) if recorded.exists() else run["base_model"]
    config_path = adapter / "adapter_config.json"
    if config_path.is_file():
        base = json.loads(config_path.read_text()).get("base_model_name_or_path")
        if base:
            return base
    raise UserError(f"cannot tell the base model of the adapter in {adapter}; pass --base")


def _check_adapter(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(
            f"{adapter} holds no LoRA adapter (adapter_config.json); train first or pass --adapter"
        )
    run = read_run(adapter)
    if run is not None and run.get("status") != "completed":
        raise UserError(
            f"the run in {adapter} is {run.get('status')}, not completed: its adapter may be partial. "
            "Finish it (train.resume_from_checkpoint=latest) before exporting."
        )


def _tokenizer_source(adapter: Path, base: str) -> str:
    return str(adapter) if (adapter / "tokenizer_config.json").is_file() else base


def merge(request: ExportRequest) -> tuple[Any, Any]:
    """Load base and adapter on the CPU and merge the adapter weights; returns (model, tokenizer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(request.adapter)
    _check_adapter(adapter)
    base = resolve_base(request)
    dtype = "auto" if request.dtype == "auto" else getattr(torch, request.dtype)
    log.info("merging %s into %s", adapter, base)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True)
    except OSError as exc:
        raise UserError(f"cannot load the base model {base!r}: {exc}") from None
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(adapter, base))
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        # Training added template tokens; the adapter holds their rows for the grown matrices.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    _set_generation_stops(merged, tokenizer, request.template or (read_run(adapter) or {}).get("template"))
    return merged, tokenizer


def _set_generation_stops(model: Any, tokenizer: Any, template_name: str | None) -> None:
    """End generation at the template's end-of-turn token(s), not only at the tokenizer's eos."""
    if not template_name:
        return
    from ftkit.models.special_tokens import stop_token_ids
    from ftkit.templates import get_template

    ids = stop_token_ids(tokenizer, get_template(template_name, tokenizer))
    model.generation_config.eos_token_id = ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    log.info("generation stops at %s", ", ".join(tokenizer.convert_ids_to_tokens(ids)))


def export(request: ExportRequest) -> Path:
    """Merge and save; returns the output directory."""
    from ftkit.config.sections.outputs import check_size

    try:
        check_size(request.shard_size)
    except ValueError as exc:
        raise UserError(f"--shard-size: {exc}") from None
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"export target {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()) and not request.force:
        raise UserError(f"export target {out} already exists and is not empty; pass --force to replace it")
    model, tokenizer = merge(request)
    with atomic_directory(out, force=request.force) as staging:
        model.save_pretrained(staging, max_shard_size=request.shard_size)
        tokenizer.save_pretrained(staging)
    log.info("merged model written to %s", out)
    return out
