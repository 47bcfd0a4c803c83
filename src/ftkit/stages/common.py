"""The trainer arguments every stage shares, from the recipe and the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.distributed import deepspeed_config

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime
    from ftkit.stages.spec import TrainerInputs


def trainer_arguments(recipe: Recipe, runtime: Runtime) -> dict[str, Any]:
    """Keyword arguments shared by every TrainingArguments subclass (SFTConfig, GRPOConfig, ...)."""
    train, logging_ = recipe.train, recipe.logging
    trackers = [name for name in logging_.report_to if name != "none"]
    return {
        "output_dir": train.output_dir,
        "num_train_epochs": train.num_train_epochs,
        "max_steps": train.max_steps,
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "per_device_eval_batch_size": train.per_device_eval_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler_type,
        # transformers 5 takes a warm-up ratio as a float below 1 in warmup_steps.
        "warmup_steps": train.warmup_steps or train.warmup_ratio,
        "weight_decay": train.weight_decay,
        "optim": train.optim,
        "optim_target_modules": train.optim_target_modules or None,
        "optim_args": train.optim_args,
        "max_grad_norm": train.max_grad_norm,
        "bf16": runtime.precision == "bf16",
        "fp16": runtime.precision == "fp16",
        "use_cpu": runtime.device == "cpu",
        "use_liger_kernel": runtime.liger_kernels,
        # Under FSDP checkpointing is FSDP's own (fsdp_arguments): the trainer's would all-gather twice.
        "activation_checkpointing": train.gradient_checkpointing and not recipe.distributed.fsdp,
        "seed": train.seed,
        "data_seed": train.seed,
        "logging_steps": train.logging_steps,
        "logging_first_step": True,
        "eval_strategy": train.eval_strategy,
        "eval_steps": train.eval_steps,
        "save_strategy": train.save_strategy,
        "save_steps": train.save_steps,
        "save_total_limit": train.save_total_limit,
        "load_best_model_at_end": train.load_best_model_at_end or bool(train.early_stopping_patience),
        "metric_for_best_model": train.metric_for_best_model,
        "greater_is_better": train.greater_is_better,
        "train_sampling_strategy": "group_by_length" if train.group_by_length else "random",
        "dataloader_num_workers": train.dataloader_num_workers,
        "report_to": trackers or "none",
        "run_name": logging_.run_name,
        "deepspeed": deepspeed_config(recipe.distributed.deepspeed),
        "ddp_backend": None if recipe.distributed.backend == "auto" else recipe.distributed.backend,
        "ddp_find_unused_parameters": recipe.distributed.find_unused_parameters,
        # A stream resumes from its saved position (stages/streaming.py), not by reading batches again.
        "ignore_data_skip": recipe.data.streaming,
        **fsdp_arguments(recipe),
    }


def fsdp_arguments(recipe: Recipe) -> dict[str, Any]:
    """transformers' `fsdp`/`fsdp_config` for distributed.fsdp (empty without it)."""
    dist = recipe.distributed
    if dist.fsdp is None:
        return {}
    config: dict[str, Any] = {
        "cpu_offload": dist.fsdp_cpu_offload,
        "activation_checkpointing": recipe.train.gradient_checkpointing,
        # One file the plain libraries load: the full weights gathered on rank 0, not per-rank shards.
        "state_dict_type": "FULL_STATE_DICT",
    }
    if dist.fsdp == "hybrid_shard":
        config |= {"version": 1, "reshard_after_forward": "hybrid_shard"}
    else:
        config |= {"version": 2, "reshard_after_forward": dist.fsdp == "full_shard"}
    return {"fsdp": True, "fsdp_config": config}


def trl_arguments(recipe: Recipe, runtime: Runtime) -> dict[str, Any]:
    """trainer_arguments plus what TRL's configs add on top of TrainingArguments."""
    extra: dict[str, Any] = {}
    if recipe.train.router_aux_loss_coef is not None:
        extra["router_aux_loss_coef"] = recipe.train.router_aux_loss_coef
    return trainer_arguments(recipe, runtime) | extra


def trainer_inputs(inputs: TrainerInputs) -> dict[str, Any]:
    """What every TRL trainer takes: the model, its arguments, the data and the tokenizer (and the LoRA+
    optimizer when the adapter asks for one)."""
    found = {
        "model": inputs.model,
        "args": inputs.args,
        "train_dataset": inputs.train,
        "eval_dataset": inputs.eval,
        "processing_class": inputs.tokenizer,
    }
    ratio = getattr(inputs.recipe.adapter, "loraplus_lr_ratio", None)
    if ratio is not None:
        found["optimizers"] = (loraplus_optimizer(inputs.model, inputs.args, ratio), None)
    return found


def loraplus_optimizer(model: Any, args: Any, ratio: float) -> Any:
    """peft's LoRA+ optimizer, of the class and settings train.optim gives (transformers' own choice)."""
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_class, settings = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return create_loraplus_optimizer(
        model, optimizer_class, loraplus_lr_ratio=ratio, weight_decay=args.weight_decay, **settings
    )


def build_trainer(trainer_class: type, inputs: TrainerInputs, **kwargs: Any) -> Any:
    """`trainer_class` on the stage's inputs; on a stream (data.streaming), its streamed version."""
    if inputs.stream is None:
        return trainer_class(**trainer_inputs(inputs), **kwargs)
    from ftkit.stages.streaming import streamed

    trainer = streamed(trainer_class)(**trainer_inputs(inputs), **kwargs)
    trainer.stream_counts = inputs.stream
    return trainer
