"""`ftkit import llamafactory CONFIG.yaml`: a LLaMA-Factory training YAML as an ftkit recipe.

Each LLaMA-Factory key is declared once in KEYS: where it goes in the recipe (with its value converted),
or why it has no ftkit equivalent. Keys whose meaning differs are converted to what reproduces
LLaMA-Factory's behavior (its defaults included: LoRA alpha 2 x rank, dropout 0, gradient checkpointing
on) and noted. Every key of the file ends up in the recipe or in the notes; none is dropped silently.
The registry is LLaMA-Factory's own `dataset_info.json`, read as it is (data.dataset_dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.importers.rules import Conversion, Rule, deepspeed, dropped, names, read_yaml, to

STAGES = {"pt": "pt", "sft": "sft", "dpo": "dpo", "kto": "kto", "rm": "rm"}
TEMPLATES = {
    # LLaMA-Factory name -> ftkit template (see `ftkit template list`); absent names use the model's own.
    "qwen": "qwen2_5",
    "qwen3": "qwen3",
    "llama3": "llama3",
    "mistral": "mistral_v0_3",
    "gemma": "gemma2",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "phi": "phi3",
    "phi4": "phi4",
    "deepseekr1": "deepseek_r1_distill_qwen",
    "alpaca": "alpaca",
    "chatml": "chatml",
    "default": "plain",
    "empty": "plain",
}
DEEPSPEED_PRESETS = {
    "ds_z2_config.json": "zero2",
    "ds_z3_config.json": "zero3",
    "ds_z3_offload_config.json": "zero3_offload",
}


def _stage(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    loss = config.get("pref_loss", "sigmoid")
    if value == "dpo" and loss in ("orpo", "simpo"):
        out.set("stage", loss)
        out.note(key, f"dpo with pref_loss: {loss} is ftkit's stage {loss}")
        return
    if value not in STAGES:
        raise UserError(
            f"{key}: {value}: ftkit has no stage {value} (stages: pt, sft, dpo, kto, orpo, simpo, rm, grpo)"
        )
    out.set("stage", STAGES[value])


def _preference(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    stage = config.get("stage")
    section = {"dpo": "dpo", "kto": "kto"}.get(stage, "dpo")
    loss = config.get("pref_loss", "sigmoid")
    if stage == "dpo" and loss in ("orpo", "simpo"):
        section = loss
    if key == "pref_beta":
        out.set(f"{section}.beta", value)
    elif key == "pref_loss" and section == "dpo":
        out.set("dpo.loss_type", value)
    elif key == "simpo_gamma" and section == "simpo":
        out.set("simpo.gamma", value)
    elif key == "pref_ftx" and section == "simpo":
        out.set("simpo.sft_weight", value)
    elif key == "pref_ftx" and value:
        out.note(
            key,
            f"not carried over ({value}): ftkit's {section} has no added supervised loss (simpo has sft_weight)",
        )


def _template(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value in TEMPLATES:
        out.set("model.template", TEMPLATES[value])
        return
    out.set("model.template", "tokenizer")
    reason = (
        "renders no <think> block (Qwen3 *-2507 Instruct models), as those models' own template does"
        if value == "qwen3_nothink"
        else "has no ftkit counterpart"
    )
    out.note(key, f"LLaMA-Factory's {value} {reason}: ftkit uses the model's own chat template (tokenizer)")


def _lora_target(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    out.set("adapter.target_modules", "all-linear" if value == "all" else names(value))


def _quantization(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key == "quantization_bit":
        if value not in (4, 8):
            raise UserError(f"{key}: {value}: ftkit quantizes with bitsandbytes in 4 or 8 bits")
        out.set("model.quantization.bits", value)
    elif key == "quantization_method" and value != "bnb":
        raise UserError(f"{key}: {value}: ftkit quantizes with bitsandbytes (bnb) only")
    elif key == "quantization_type":
        out.set("model.quantization.quant_type", value)
    elif key == "double_quantization":
        out.set("model.quantization.double_quant", bool(value))


def _precision(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if not value:
        return
    if key == "pure_bf16":
        out.set("model.dtype", "bfloat16")
        out.note(key, "the weights are loaded in bfloat16 (model.dtype) and trained in bf16")
    out.set("train.precision", "fp16" if key == "fp16" else "bf16")


def _galore(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key != "use_galore" or not value:
        return
    layerwise = config.get("galore_layerwise", False)
    out.set("train.optim", "galore_adamw_layerwise" if layerwise else "galore_adamw")
    target = config.get("galore_target", "all")
    out.set("train.optim_target_modules", [".*attn.*", ".*mlp.*"] if target == "all" else names(target))
    rank, scale = config.get("galore_rank", 16), config.get("galore_scale", 2.0)
    out.set(
        "train.optim_args",
        f"rank={rank}, scale={scale}, update_proj_gap={config.get('galore_update_interval', 200)}",
    )
    out.note(key, "GaLore through transformers' optimizer: train.optim, optim_target_modules and optim_args")


def _report_to(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    listed = names(value)
    kept = [name for name in listed if name in ("wandb", "tensorboard", "mlflow")]
    out.set("logging.report_to", kept)
    if unknown := [name for name in listed if name not in (*kept, "none")]:
        out.note(
            key, f"{', '.join(unknown)} not carried over: ftkit reports to wandb, tensorboard and mlflow"
        )


def _packing(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value:
        out.set("data.packing", True)
    if key == "neat_packing" and value:
        out.note(
            key, "ftkit's packing never lets packed examples attend to each other (neat packing) already"
        )


def _flash_attn(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    mapping = {
        "fa2": "flash_attention_2",
        "fa3": "flash_attention_3",
        "sdpa": "sdpa",
        "disabled": "eager",
        "auto": "auto",
    }
    out.set("model.attn_implementation", mapping.get(value, "auto"))


def _init(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key == "pissa_init" and value:
        out.set("adapter.init", "pissa")
        out.note(
            key, "peft's PiSSA with its fast SVD; the saved adapter is always converted for the original base"
        )


def _freeze_modules(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value not in ("all", None):
        out.note(key, f"not carried over ({value}): ftkit's freeze trains whole layers (trainable_layers)")


KEYS: dict[str, Rule] = {
    "model_name_or_path": to("model.name_or_path"),
    "trust_remote_code": to("model.trust_remote_code"),
    "adapter_name_or_path": to("adapter.init_from"),
    "stage": _stage,
    "do_train": dropped("ftkit train always trains"),
    "finetuning_type": to("adapter.type"),
    "lora_rank": to("adapter.r"),
    "lora_alpha": to("adapter.alpha"),
    "lora_dropout": to("adapter.dropout"),
    "lora_target": _lora_target,
    "additional_target": to("adapter.modules_to_save", names),
    "use_dora": to("adapter.use_dora"),
    "use_rslora": to("adapter.use_rslora"),
    "pissa_init": _init,
    "pissa_iter": dropped("peft's PiSSA runs its own number of iterations"),
    "pissa_convert": dropped("ftkit always converts a PiSSA adapter for the original base"),
    "loraplus_lr_ratio": to("adapter.loraplus_lr_ratio"),
    "freeze_trainable_layers": to("adapter.trainable_layers"),
    "freeze_trainable_modules": _freeze_modules,
    "use_llama_pro": dropped("LLaMA Pro's block expansion is not in ftkit"),
    "use_galore": _galore,
    "galore_layerwise": _galore,
    "galore_target": _galore,
    "galore_rank": _galore,
    "galore_scale": _galore,
    "galore_update_interval": _galore,
    "pref_beta": _preference,
    "pref_loss": _preference,
    "pref_ftx": _preference,
    "simpo_gamma": _preference,
    "kto_chosen_weight": to("kto.desirable_weight"),
    "kto_rejected_weight": to("kto.undesirable_weight"),
    "dataset": to("data.train", names),
    "eval_dataset": to("data.eval", names),
    "dataset_dir": to("data.dataset_dir"),
    "template": _template,
    "cutoff_len": to("data.max_length"),
    "max_samples": to("data.max_samples"),
    "val_size": to("data.val_size"),
    "packing": _packing,
    "neat_packing": _packing,
    "train_on_prompt": to("data.train_on_prompt"),
    "mask_history": to("data.mask_history"),
    "preprocessing_num_workers": to("data.num_proc"),
    "overwrite_cache": dropped(
        "ftkit's data cache is keyed by the data, tokenizer and settings: a change re-tokenizes"
    ),
    "tokenized_path": dropped("ftkit caches the tokenized data itself (data.cache, data.cache_dir)"),
    "dataloader_num_workers": to("train.dataloader_num_workers"),
    "output_dir": to("train.output_dir"),
    "overwrite_output_dir": to("train.overwrite_output_dir"),
    "resume_from_checkpoint": to("train.resume_from_checkpoint"),
    "logging_steps": to("train.logging_steps"),
    "save_steps": to("train.save_steps"),
    "save_strategy": to("train.save_strategy"),
    "save_total_limit": to("train.save_total_limit"),
    "per_device_train_batch_size": to("train.per_device_train_batch_size"),
    "per_device_eval_batch_size": to("train.per_device_eval_batch_size"),
    "gradient_accumulation_steps": to("train.gradient_accumulation_steps"),
    "learning_rate": to("train.learning_rate", float),
    "num_train_epochs": to("train.num_train_epochs", float),
    "max_steps": to("train.max_steps"),
    "lr_scheduler_type": to("train.lr_scheduler_type"),
    "warmup_ratio": to("train.warmup_ratio"),
    "warmup_steps": to("train.warmup_steps"),
    "weight_decay": to("train.weight_decay"),
    "max_grad_norm": to("train.max_grad_norm"),
    "seed": to("train.seed"),
    "eval_strategy": to("train.eval_strategy"),
    "eval_steps": to("train.eval_steps"),
    "bf16": _precision,
    "fp16": _precision,
    "pure_bf16": _precision,
    "flash_attn": _flash_attn,
    "quantization_bit": _quantization,
    "quantization_method": _quantization,
    "quantization_type": _quantization,
    "double_quantization": _quantization,
    "deepspeed": deepspeed(DEEPSPEED_PRESETS, "LLaMA-Factory"),
    "report_to": _report_to,
    "run_name": to("logging.run_name"),
    "plot_loss": dropped("ftkit writes loss.png for every run"),
    "save_only_model": dropped("ftkit checkpoints always hold what a resume needs"),
    "ddp_timeout": dropped(
        "ftkit has no collective-operation timeout setting (distributed.rendezvous_timeout is the rendezvous's)"
    ),
    "disable_gradient_checkpointing": dropped("handled with gradient checkpointing below"),
}
NOT_TRAINING = {
    "export_dir": "a merge config: `ftkit export RECIPE` merges a trained run (export.output_dir, export.shard_size)",
    "infer_backend": "an inference config: `ftkit chat RECIPE` / `ftkit generate` use a trained run",
}


def convert(config: dict[str, Any]) -> Conversion:
    """The recipe and the notes for one LLaMA-Factory training config."""
    for key, what in NOT_TRAINING.items():
        if key in config:
            raise UserError(f"not a training config ({key}): {what}")
    if "stage" not in config:
        raise UserError("not a LLaMA-Factory training config: it has no stage")
    out = Conversion()
    out.convert(config, KEYS)
    _defaults(out, config)
    return out


def _defaults(out: Conversion, config: dict[str, Any]) -> None:
    """LLaMA-Factory's defaults where they differ from ftkit's, set explicitly so the run behaves alike."""
    adapter = out.get("adapter.type", "lora")
    out.set("adapter.type", adapter)
    if adapter == "lora":
        rank = out.get("adapter.r", 8)
        out.set("adapter.r", rank)
        if "lora_alpha" not in config:
            out.set("adapter.alpha", rank * 2)
            out.note("lora_alpha", f"LLaMA-Factory's default, 2 x lora_rank = {rank * 2}, set explicitly")
        if "lora_dropout" not in config:
            out.set("adapter.dropout", 0.0)
            out.note("lora_dropout", "LLaMA-Factory's default 0 set explicitly (ftkit's is 0.05)")
        out.get("adapter.target_modules") or out.set("adapter.target_modules", "all-linear")
    if not config.get("disable_gradient_checkpointing"):
        out.set("train.gradient_checkpointing", True)
        out.note(
            "disable_gradient_checkpointing",
            "LLaMA-Factory checkpoints activations by default: set explicitly",
        )
    if "dataset_dir" not in config:
        out.set("data.dataset_dir", "data")
    if "cutoff_len" not in config:
        out.set("data.max_length", 2048)
        out.note("cutoff_len", "LLaMA-Factory's default 2048 set explicitly")
    if out.get("data.packing"):
        out.note(
            "cutoff_len",
            "with packing, ftkit's max_length is the packed row's length, as LLaMA-Factory's cutoff_len",
        )
    if "learning_rate" not in config:
        out.set("train.learning_rate", 5.0e-5)
    if "output_dir" not in config:
        out.set("train.output_dir", "saves/imported")
        out.note("output_dir", "none given: saves/imported")


def import_config(path: str | Path) -> Conversion:
    return convert(read_yaml(path, "LLaMA-Factory"))


def render(conversion: Conversion, source: str | Path) -> str:
    return conversion.render(f"the LLaMA-Factory config {source} by `ftkit import llamafactory`")
