"""`ftkit export`: merge a LoRA adapter into its base model and save a standard transformers directory
(safetensors shards + index, config, generation config, tokenizer with the trained chat template).

The merge streams the base checkpoint shard by shard (merge.py), so memory stays near one shard. Only
a base that cannot be streamed (pickle weights, renamed tensors) is loaded whole, and the log says why.
The output is written to a temporary sibling and renamed into place: an interrupted export never
leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ftkit.atomic import atomic_directory, atomic_write_text
from ftkit.config import Recipe
from ftkit.errors import UserError
from ftkit.models.heads import CAUSAL_LM, head_of_adapter
from ftkit.models.loader import load_merged, trained_tokenizer
from ftkit.models.runtime import torch_dtype
from ftkit.models.sources import looks_like_path
from ftkit.rundir import RESOLVED_RECIPE_FILE, read_run, recorded_base

log = logging.getLogger(__name__)
EXPORT_FILE = "export.json"


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
    revision: str | None = None
    """Hub revision of the base; None: the one its run.json records (else the default branch)."""
    allow_pickle: bool = False
    """Load a base stored in pickle files (.bin), which can run code when loaded."""
    verify: bool = True
    """Compare the export with the adapter on a few of the run's prompts (verify.py), recorded in export.json."""

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
            recipe.model.revision,
            recipe.model.allow_pickle,
        )


def resolve_base(request: ExportRequest, run: dict[str, Any]) -> str:
    """The base model of the adapter: explicit, else the one its run records."""
    base = request.base or recorded_base(request.adapter, run)
    if not base:
        raise UserError(f"cannot tell the base model of the adapter in {request.adapter}; pass --base")
    return base


def _check_adapter(adapter: Path, run: dict[str, Any]) -> None:
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(
            f"{adapter} holds no LoRA adapter (adapter_config.json); train first or pass --adapter"
        )
    from ftkit.merge import adapter_weights

    adapter_weights(adapter)
    if run and run.get("status") != "completed":
        raise UserError(
            f"the run in {adapter} is {run.get('status')}, not completed: its adapter may be partial. "
            "Finish it (train.resume_from_checkpoint=latest) before exporting."
        )


def local_checkpoint(base: str, revision: str | None = None) -> Path:
    """The base model's folder: a local path, or the hub snapshot (from the cache when offline).

    From the hub: the small files first, then only the weight files the safetensors index names, so
    that extra copies some repositories carry (e.g. consolidated.safetensors) are not downloaded.
    """
    path = Path(base)
    if path.is_dir():
        return path
    if looks_like_path(base):
        raise UserError(f"base model {base}: no such local folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(
            snapshot_download(base, revision=revision, allow_patterns=["*.json", "*.py", "*.txt", "*.model"])
        )
        index = folder / "model.safetensors.index.json"
        weights = (
            sorted(set(json.loads(index.read_text())["weight_map"].values()))
            if index.is_file()
            else ["model.safetensors"]
        )
        return Path(snapshot_download(base, revision=revision, allow_patterns=weights))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise UserError(f"cannot get the base model {base!r}: {exc}") from None


def _refuse_quantized(base_dir: Path) -> None:
    config_path = base_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    quantization = config.get("quantization_config")
    if quantization:
        method = quantization.get("quant_method", "unknown")
        raise UserError(
            f"the base model in {base_dir} is quantized ({method}); a merge needs the full-precision "
            "weights: pass the full-precision model as --base (a QLoRA adapter merges into it exactly)"
        )


def _refuse_own_inputs(out: Path, inputs: list[Path]) -> None:
    """Replacing `out` must never delete the adapter or the base it is made from."""
    target = out.resolve()
    for source in inputs:
        source = source.resolve()
        if target == source or target in source.parents:
            raise UserError(
                f"export target {out} holds {source}: replacing it would delete an input of the export; "
                "choose another output directory"
            )


def _dtype(name: str) -> Any:
    return None if name == "auto" else torch_dtype(name)


def _stop_ids(tokenizer: Any, template_name: str | None) -> list[int] | None:
    if not template_name:
        return None
    from ftkit.models.special_tokens import stop_token_ids
    from ftkit.templates import get_template

    return stop_token_ids(tokenizer, get_template(template_name, tokenizer))


def _write_config(base_dir: Path, staging: Path, dtype: str, vocab_size: int | None) -> None:
    config = json.loads((base_dir / "config.json").read_text())
    if dtype != "auto":
        config["dtype"] = dtype
        config.pop("torch_dtype", None)
    if vocab_size is not None:
        config["vocab_size"] = vocab_size
    config.pop("quantization_config", None)  # the merged weights are full precision
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for code in base_dir.glob("*.py"):  # models with their own modeling code (trust_remote_code)
        shutil.copy2(code, staging / code.name)


def _generation_config(base_dir: Path, stops: list[int] | None, tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(str(base_dir))
    except OSError:
        config = GenerationConfig()
    if stops:
        config.eos_token_id = stops
        config.pad_token_id = tokenizer.pad_token_id
    return config


def export(request: ExportRequest) -> Path:
    """Merge and save; returns the output directory."""
    from ftkit.merge import CannotStream, parse_size, stream_merge

    parse_size(request.shard_size)
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"export target {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()) and not request.force:
        raise UserError(f"export target {out} already exists and is not empty; pass --force to replace it")
    adapter = Path(request.adapter)
    run = read_run(adapter) or {}
    _check_adapter(adapter, run)
    base = resolve_base(request, run)
    request = replace(
        request,
        template=request.template or run.get("template"),
        revision=request.revision or run.get("base_revision"),
    )
    record: dict[str, Any] = {
        "base": base,
        "revision": request.revision,
        "adapter": str(adapter),
        "template": request.template,
    }
    log.info("merging %s into %s", adapter, base)
    base_dir = local_checkpoint(base, request.revision)
    _refuse_own_inputs(out, [adapter, base_dir])
    _refuse_quantized(base_dir)
    with atomic_directory(out, force=request.force) as staging:
        try:
            if head_of_adapter(adapter).new_head:
                raise CannotStream("a reward model's score head is not in the base checkpoint")
            report = stream_merge(base_dir, adapter, staging, request.shard_size, _dtype(request.dtype))
            _write_config(base_dir, staging, request.dtype, report.vocab_size)
            tokenizer = trained_tokenizer(adapter, base)
            record |= {"method": "streaming", **asdict(report)}
            log.info(
                "streamed %d tensors (%d LoRA modules merged, %d replaced) from %d shard(s) into %d; "
                "peak memory %.0f MB",
                report.tensors,
                report.merged_modules,
                report.replaced_tensors,
                report.input_shards,
                report.output_shards,
                report.peak_memory_mb,
            )
        except CannotStream as why:
            if "pickle" in str(why) and not request.allow_pickle:
                raise UserError(
                    f"the base model in {base_dir} is stored as pickle files, which can run code when "
                    "loaded; convert it to safetensors, or pass --allow-pickle (model.allow_pickle) if you trust it"
                ) from None
            log.warning("cannot merge shard by shard (%s): loading the whole model instead", why)
            for child in staging.iterdir():
                child.unlink()
            model, tokenizer = load_merged(
                base, adapter, request.dtype, request.revision, request.allow_pickle
            )
            model.save_pretrained(staging, max_shard_size=parse_size(request.shard_size))
            record |= {"method": "whole model", "reason": str(why)}
        tokenizer.save_pretrained(staging)
        stops = _stop_ids(tokenizer, request.template)
        _generation_config(base_dir, stops, tokenizer).save_pretrained(staging)
        if stops:
            log.info("generation stops at %s", ", ".join(tokenizer.convert_ids_to_tokens(stops)))
        (staging / EXPORT_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    log.info("merged model written to %s", out)
    if (
        request.verify
        and (adapter / RESOLVED_RECIPE_FILE).is_file()
        and head_of_adapter(adapter) is CAUSAL_LM
    ):
        _record_verification(adapter, out, record)
    return out


def _record_verification(run_dir: Path, out: Path, record: dict[str, Any]) -> None:
    """The adapter-vs-export comparison, logged and added to export.json (a mismatch is a warning: the
    export is complete, `ftkit verify` shows the details)."""
    from ftkit.verify import check_export

    result = check_export(run_dir, out)
    atomic_write_text(
        out / EXPORT_FILE, json.dumps({**record, "verified": result}, indent=2, default=str) + "\n"
    )
    if result["passed"]:
        log.info(
            "verified on %d prompts: the export answers as the adapter (log-prob gap %.1e)",
            result["prompts"],
            result["max_logprob_gap"],
        )
    else:
        log.warning(
            "the export does not answer as the adapter: %s; run ftkit verify %s for the details",
            result["first_difference"],
            run_dir,
        )
