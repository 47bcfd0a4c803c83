"""`ftkit import axolotl CONFIG.yml -o recipe.yaml`: an axolotl training config as an ftkit recipe.

Each axolotl key is declared once in KEYS: where it goes in the recipe, or why it has no ftkit
equivalent. Axolotl's inline `datasets:` become entries of a dataset registry written beside the recipe
(axolotl_datasets.py). Axolotl's defaults that differ from ftkit's are set explicitly (LoRA dropout 0,
full fine-tuning when no adapter is named, a 2048-token sequence length) and noted; every key of the
file ends up in the recipe or in the notes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.importers.axolotl_datasets import register
from ftkit.importers.rules import Conversion, Rule, deepspeed, dropped, names, read_yaml, to

RL_STAGES = {"dpo": "dpo", "ipo": "dpo", "kto": "kto", "orpo": "orpo", "simpo": "simpo", "grpo": "grpo"}
TEMPLATES = {
    # axolotl chat_template -> ftkit template; tokenizer_default and unlisted names use the model's own.
    "chatml": "chatml",
    "llama3": "llama3",
    "llama3_2_vision": None,
    "mistral_v3_tekken": None,
    "mistral_v1": None,
    "mistral_v2v3": "mistral_v0_3",
    "gemma": "gemma2",
    "gemma3": "gemma3",
    "phi_3": "phi3",
    "phi_35": "phi3_5",
    "phi_4": "phi4",
    "qwen_25": "qwen2_5",
    "qwen3": "qwen3",
    "deepseek_v2": None,
}
DEEPSPEED_PRESETS = {
    "zero2.json": "zero2",
    "zero3.json": "zero3",
    "zero3_bf16.json": "zero3",
    "zero3_bf16_cpuoffload_all.json": "zero3_offload",
    "zero3_bf16_cpuoffload_params.json": "zero3_offload",
}
OPTIMIZERS = {
    "adamw_torch": "adamw_torch",
    "adamw_torch_fused": "adamw_torch_fused",
    "adamw_bnb_8bit": "adamw_8bit",
    "adamw_8bit": "adamw_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "paged_adamw_32bit": "paged_adamw_32bit",
    "adafactor": "adafactor",
    "sgd": "sgd",
    "lion_8bit": "lion_8bit",
    "paged_lion_8bit": "paged_lion_8bit",
}
SCHEDULERS = {"cosine", "linear", "constant", "constant_with_warmup", "polynomial", "cosine_with_restarts"}
GRPO_KEYS = {
    "beta": "grpo.beta",
    "num_generations": "grpo.num_generations",
    "max_completion_length": "grpo.max_completion_length",
    "temperature": "grpo.temperature",
    "loss_type": "grpo.loss_type",
    "epsilon": "grpo.epsilon",
    "epsilon_high": "grpo.epsilon_high",
    "scale_rewards": "grpo.scale_rewards",
    "mask_truncated_completions": "grpo.mask_truncated_completions",
    "num_iterations": "grpo.num_iterations",
    "importance_sampling_level": "grpo.importance_sampling_level",
}


def _model(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    out.set("model.name_or_path", str(value))


def _quantization(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value:
        out.set("model.quantization.bits", 8 if key == "load_in_8bit" else 4)


def _bnb(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    for name, setting in value.items():
        if name == "bnb_4bit_quant_type":
            out.set("model.quantization.quant_type", setting)
        elif name == "bnb_4bit_use_double_quant":
            out.set("model.quantization.double_quant", bool(setting))
        else:
            out.note(
                f"{key}.{name}", f"not carried over ({setting!r}): ftkit has no such quantization setting"
            )


def _adapter(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value not in ("lora", "qlora"):
        raise UserError(
            f"{key}: {value}: ftkit's adapters are lora (qlora: lora on a 4-bit base) or none (full)"
        )
    out.set("adapter.type", "lora")
    if value == "qlora" and not config.get("load_in_4bit"):
        out.set("model.quantization.bits", 4)
        out.note(key, "qlora: the base loads in 4 bits (model.quantization.bits)")


def _targets(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key == "lora_target_linear" and value:
        out.set("adapter.target_modules", "all-linear")
    elif key == "lora_target_modules" and not config.get("lora_target_linear"):
        out.set("adapter.target_modules", names(value))
    elif key == "lora_target_modules":
        out.note(key, "lora_target_linear wins: every linear layer gets an adapter (all-linear)")


def _template(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    template = TEMPLATES.get(value)
    out.set("model.template", template or "tokenizer")
    if template is None and value != "tokenizer_default":
        out.note(
            key, f"axolotl's {value} has no ftkit counterpart: the model's own chat template (tokenizer)"
        )
    if value == "jinja":
        out.note("chat_template_jinja", "not carried over: put the template in the tokenizer's chat_template")


def _datasets(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if not isinstance(value, list):
        value = [value]
    rl = _rl(config)
    registered = [register(spec, out, rl, f"{key}[{number}]") for number, spec in enumerate(value)]
    target = {"datasets": "data.train", "test_datasets": "data.eval", "pretraining_dataset": "data.train"}[
        key
    ]
    out.set(target, registered)
    if key == "pretraining_dataset":
        out.set("stage", "pt")
        out.set("data.streaming", True)
        out.note(key, "axolotl streams pretraining datasets: stage pt with data.streaming")


def _rl(config: dict[str, Any]) -> str | None:
    rl = config.get("rl")
    if config.get("reward_model"):
        return "rm"
    return None if rl in (None, False) else str(rl)


def _stage(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key == "reward_model":
        if value:
            out.set("stage", "rm")
        return
    if value not in RL_STAGES:
        raise UserError(
            f"rl: {value}: ftkit has no such stage (stages: pt, sft, dpo, kto, orpo, simpo, rm, grpo)"
        )
    out.set("stage", RL_STAGES[value])
    if value == "ipo":
        out.set("dpo.loss_type", "ipo")
        out.note(key, "ipo is ftkit's dpo with dpo.loss_type ipo")


def _beta(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    stage = RL_STAGES.get(config.get("rl"), "dpo")
    out.set(f"{stage}.beta", value)


def _trl(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    for name, setting in value.items():
        where = f"{key}.{name}"
        if name in GRPO_KEYS:
            out.set(GRPO_KEYS[name], setting)
        elif name == "reward_funcs":
            weights = value.get("reward_weights") or [1.0] * len(setting)
            if len(weights) != len(setting):
                raise UserError(
                    f"{key}.reward_weights: one weight per reward ({len(setting)}), not {len(weights)}"
                )
            out.set(
                "grpo.reward_funcs",
                [
                    {"name": ":".join(func.rsplit(".", 1)), "weight": weight}
                    for func, weight in zip(setting, weights, strict=True)
                ],
            )
            out.note(
                where, "each `module.function` is the reward `module:function` (same arguments as TRL's)"
            )
        elif name == "reward_weights":
            continue
        elif name == "use_vllm":
            mode = value.get("vllm_mode", "server")
            out.set("grpo.generation", f"vllm_{mode}" if setting else "transformers")
        elif name == "vllm_mode":
            continue
        else:
            out.note(where, f"not carried over ({setting!r}): ftkit's grpo section has no such setting")


def _precision(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value == "auto":
        out.set("train.precision", "auto")
    elif value:
        out.set("train.precision", "fp16" if key == "fp16" else "bf16")


def _optimizer(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value in OPTIMIZERS:
        out.set("train.optim", OPTIMIZERS[value])
    else:
        out.note(
            key, f"not carried over ({value!r}): ftkit's optimizers are {', '.join(OPTIMIZERS.values())}"
        )


def _scheduler(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value in SCHEDULERS:
        out.set("train.lr_scheduler_type", value)
    else:
        out.note(
            key,
            f"not carried over ({value!r}): ftkit's schedules are transformers' ({', '.join(sorted(SCHEDULERS))}, ...)",
        )


def _per_epoch(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    what = "save" if key == "saves_per_epoch" else "eval"
    if value == 1:
        out.set(f"train.{what}_strategy", "epoch")
    else:
        out.note(
            key, f"not carried over ({value}): set train.{what}_steps to the optimizer steps between them"
        )


def _checkpointing(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    out.set("train.gradient_checkpointing", bool(value))
    if isinstance(value, str):
        out.note(key, f"{value}: ftkit checkpoints activations the standard way (no offloading)")


def _attention(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if value:
        out.set("model.attn_implementation", "flash_attention_2" if key == "flash_attention" else "sdpa")


def _fsdp(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    if key == "fsdp":
        listed = names(value)
        mode = next(
            (mode for mode in ("full_shard", "shard_grad_op", "hybrid_shard") if mode in listed), None
        )
        if mode:
            out.set("distributed.fsdp", mode)
    else:
        offload = value.get("fsdp_offload_params", value.get("offload_params"))
        if offload:
            out.set("distributed.fsdp_cpu_offload", True)
        out.note(key, "ftkit wraps each decoder layer; only the CPU offload setting is carried over")


def _trackers(out: Conversion, key: str, value: Any, config: dict[str, Any]) -> None:
    tracker = {"wandb_project": "wandb", "use_tensorboard": "tensorboard", "use_mlflow": "mlflow"}[key]
    if not value:
        return
    out.set("logging.report_to", [*out.get("logging.report_to", []), tracker])
    if key == "wandb_project":
        out.set("logging.project", value)


KEYS: dict[str, Rule] = {
    "base_model": _model,
    "base_model_config": dropped("ftkit reads the config from model.name_or_path"),
    "revision_of_model": to("model.revision"),
    "tokenizer_config": to("model.tokenizer"),
    **dict.fromkeys(
        (
            "model_type",
            "tokenizer_type",
            "tokenizer_use_fast",
            "tokenizer_legacy",
            "is_llama_derived_model",
            "is_mistral_derived_model",
            "is_qwen_derived_model",
            "is_falcon_derived_model",
        ),
        dropped("ftkit picks the classes from the model's config"),
    ),
    "trust_remote_code": to("model.trust_remote_code"),
    "load_in_8bit": _quantization,
    "load_in_4bit": _quantization,
    "bnb_config_kwargs": _bnb,
    "adapter": _adapter,
    "lora_model_dir": to("adapter.init_from"),
    "lora_r": to("adapter.r"),
    "lora_alpha": to("adapter.alpha"),
    "lora_dropout": to("adapter.dropout"),
    "lora_target_modules": _targets,
    "lora_target_linear": _targets,
    "lora_modules_to_save": to("adapter.modules_to_save", names),
    "lora_fan_in_fan_out": dropped("peft sets fan_in_fan_out from the model's layer type"),
    "peft_use_dora": to("adapter.use_dora"),
    "peft_use_rslora": to("adapter.use_rslora"),
    "loraplus_lr_ratio": to("adapter.loraplus_lr_ratio"),
    "chat_template": _template,
    "chat_template_jinja": dropped(
        "put the template in the tokenizer's chat_template (model.template: tokenizer)"
    ),
    "datasets": _datasets,
    "test_datasets": _datasets,
    "pretraining_dataset": _datasets,
    "val_set_size": lambda out, key, value, config: value and out.set("data.val_size", value),
    "dataset_prepared_path": dropped("ftkit caches tokenized data itself (data.cache_dir)"),
    "dataset_processes": to("data.num_proc"),
    "shuffle_merged_datasets": dropped("ftkit shuffles the combined training data every epoch"),
    "sequence_len": to("data.max_length"),
    "sample_packing": to("data.packing"),
    "eval_sample_packing": dropped("eval data is packed when data.packing is"),
    "pad_to_sequence_len": dropped("ftkit pads each batch to its longest example (packed rows are full)"),
    "train_on_inputs": to("data.train_on_prompt"),
    "rl": _stage,
    "reward_model": _stage,
    "rl_beta": _beta,
    "dpo_label_smoothing": to("dpo.label_smoothing"),
    "orpo_alpha": to("orpo.beta"),
    "cpo_alpha": to("simpo.sft_weight"),
    "simpo_gamma": to("simpo.gamma"),
    "kto_desirable_weight": to("kto.desirable_weight"),
    "kto_undesirable_weight": to("kto.undesirable_weight"),
    "trl": _trl,
    "output_dir": to("train.output_dir"),
    "resume_from_checkpoint": to("train.resume_from_checkpoint"),
    "auto_resume_from_checkpoints": lambda out, key, value, config: (
        value and out.set("train.resume_from_checkpoint", "latest")
    ),
    "micro_batch_size": to("train.per_device_train_batch_size"),
    "eval_batch_size": to("train.per_device_eval_batch_size"),
    "gradient_accumulation_steps": to("train.gradient_accumulation_steps"),
    "num_epochs": to("train.num_train_epochs", float),
    "max_steps": to("train.max_steps"),
    "learning_rate": to("train.learning_rate", float),
    "optimizer": _optimizer,
    "lr_scheduler": _scheduler,
    "warmup_steps": to("train.warmup_steps"),
    "warmup_ratio": to("train.warmup_ratio"),
    "weight_decay": to("train.weight_decay"),
    "max_grad_norm": to("train.max_grad_norm"),
    "bf16": _precision,
    "fp16": _precision,
    "tf32": dropped("ftkit has no TF32 switch"),
    "gradient_checkpointing": _checkpointing,
    "gradient_checkpointing_kwargs": dropped("ftkit checkpoints without reentrant autograd"),
    "early_stopping_patience": to("train.early_stopping_patience"),
    "group_by_length": to("train.group_by_length"),
    "logging_steps": to("train.logging_steps"),
    "save_steps": to("train.save_steps"),
    "save_strategy": to("train.save_strategy"),
    "save_total_limit": to("train.save_total_limit"),
    "saves_per_epoch": _per_epoch,
    "eval_steps": to("train.eval_steps"),
    "eval_strategy": to("train.eval_strategy"),
    "evals_per_epoch": _per_epoch,
    "seed": to("train.seed"),
    "flash_attention": _attention,
    "sdp_attention": _attention,
    "xformers_attention": dropped("ftkit's kernels are flash_attention_2/3, sdpa and eager"),
    **dict.fromkeys(
        ("flash_attn_cross_entropy", "flash_attn_rms_norm", "flash_attn_fuse_qkv", "flash_attn_fuse_mlp"),
        dropped("fused kernels beyond the attention implementation are not in ftkit"),
    ),
    "deepspeed": deepspeed(DEEPSPEED_PRESETS, "axolotl"),
    "fsdp": _fsdp,
    "fsdp_config": _fsdp,
    "wandb_project": _trackers,
    "use_tensorboard": _trackers,
    "use_mlflow": _trackers,
    "wandb_name": to("logging.run_name"),
    "mlflow_tracking_uri": to("logging.mlflow_tracking_uri"),
    "mlflow_experiment_name": to("logging.project"),
    **dict.fromkeys(
        ("wandb_entity", "wandb_watch", "wandb_log_model", "wandb_run_id"),
        dropped("set through wandb's own environment (WANDB_ENTITY, ...)"),
    ),
    "special_tokens": dropped(
        "ftkit uses the tokenizer's special tokens (model.add_template_tokens adds a template's)"
    ),
    "tokens": dropped("ftkit adds no free-form tokens; model.add_template_tokens adds a template's markers"),
    **dict.fromkeys(
        (
            "strict",
            "debug",
            "local_rank",
            "eval_table_size",
            "eval_max_new_tokens",
            "hub_model_id",
            "hub_strategy",
            "push_dataset_to_hub",
        ),
        dropped("nothing to do in ftkit"),
    ),
}


def convert(config: dict[str, Any], config_dir: Path = Path(".")) -> Conversion:
    """The recipe, its dataset registry and the notes for one axolotl training config."""
    if not config.get("base_model"):
        raise UserError("not an axolotl training config: it has no base_model")
    if not any(config.get(key) for key in ("datasets", "pretraining_dataset")):
        raise UserError("the axolotl config names no datasets (datasets or pretraining_dataset)")
    out = Conversion(source_dir=config_dir)
    out.set("stage", "sft")
    out.convert(config, KEYS)
    _defaults(out, config)
    return out


def _defaults(out: Conversion, config: dict[str, Any]) -> None:
    """Axolotl's behavior where ftkit's defaults differ, set explicitly."""
    if "adapter" not in config:
        out.set("adapter", {"type": "full"})
        out.note("adapter", "none given: axolotl fine-tunes every weight (adapter.type full)")
    elif "lora_dropout" not in config:
        out.set("adapter.dropout", 0.0)
        out.note("lora_dropout", "axolotl's default 0 set explicitly (ftkit's is 0.05)")
    if "sequence_len" not in config:
        out.set("data.max_length", 2048)
        out.note("sequence_len", "axolotl's default 2048 set explicitly")
    if out.get("data.packing"):
        out.note(
            "sample_packing", "ftkit's packing never lets packed examples attend to each other, as axolotl's"
        )
    if out.get("stage") == "sft" and all(entry["formatting"] == "text" for entry in out.registry.values()):
        out.set("stage", "pt")
        out.note(
            "datasets", "completion datasets only: axolotl trains every token of them, as ftkit's stage pt"
        )
    if out.get("stage") != "pt":
        out.get("model.template") or out.set("model.template", "tokenizer")
    if "output_dir" not in config:
        out.set("train.output_dir", "outputs/imported")
        out.note("output_dir", "none given: outputs/imported")
    if "learning_rate" not in config:
        out.note("learning_rate", "none given: ftkit's default for the adapter type")


def import_config(path: str | Path) -> Conversion:
    return convert(read_yaml(path, "axolotl"), Path(path).parent)


def render(conversion: Conversion, source: str | Path) -> str:
    return conversion.render(f"the axolotl config {source} by `ftkit import axolotl`")
