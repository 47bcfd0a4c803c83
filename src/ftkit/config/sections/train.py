"""`train:` the optimization loop; key names follow transformers' TrainingArguments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ftkit.config.sections.base import ConfigConflict, Section

SCHEDULERS = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "cosine_with_min_lr",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "warmup_stable_decay",
]
OPTIMIZERS = Literal[
    "adamw_torch",
    "adamw_torch_fused",
    "adafactor",
    "sgd",
    "adamw_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "lion_8bit",
    "paged_lion_8bit",
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adamw_layerwise",
    "apollo_adamw",
    "apollo_adamw_layerwise",
]
PROJECTED_OPTIMIZERS = ("galore", "apollo")
"""Optimizers that keep low-rank projections of the gradients of full weights (optim_target_modules)."""


class TrainConfig(Section):
    """Optimizer, schedule, precision, checkpointing."""

    output_dir: str = Field(min_length=1)
    """Where the run writes its recipe, metadata, checkpoints, logs and final adapter or model."""
    overwrite_output_dir: bool = False
    """Replace an output_dir that already holds a run; without it such a directory is an error."""
    resume_from_checkpoint: str | None = None
    """Continue a run: latest (newest complete checkpoint in output_dir) or a checkpoint directory."""
    num_train_epochs: float = Field(3.0, gt=0)
    """Passes over the training data (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 trains for num_train_epochs."""
    per_device_train_batch_size: int = Field(4, ge=1)
    """Examples per process per forward pass."""
    per_device_eval_batch_size: int | None = Field(None, ge=1)
    """Defaults to per_device_train_batch_size."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Forward passes summed before each optimizer step (effective batch = batch x accumulation x processes)."""
    learning_rate: float | None = Field(None, gt=0)
    """Peak learning rate; default 2e-4 for LoRA, 2e-5 for full and freeze training."""
    lr_scheduler_type: SCHEDULERS = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    """Fraction of the optimizer steps spent warming up linearly from 0."""
    warmup_steps: int = Field(0, ge=0)
    """Warm-up length in optimizer steps (instead of warmup_ratio)."""
    weight_decay: float = Field(0.0, ge=0)
    """Decoupled weight decay of AdamW."""
    optim: OPTIMIZERS = "adamw_torch_fused"
    """Optimizer (transformers' default): AdamW as one fused kernel per step on CPU and GPU; adamw_torch
    is the same update one parameter at a time. The 8-bit and paged variants need the bitsandbytes extra;
    galore_* (GaLore) and apollo_* (APOLLO) save optimizer memory in full fine-tuning, with the galore or
    apollo extra and train.optim_target_modules."""
    optim_target_modules: list[str] = Field(default_factory=list)
    """GaLore / APOLLO (train.optim galore_* / apollo_*): the weights whose gradients are projected, as
    name patterns (e.g. [attn, mlp]); the others get plain AdamW."""
    optim_args: str | None = None
    """Options of the optimizer as transformers takes them, e.g. "rank=64, update_proj_gap=200, scale=0.25"
    for GaLore."""
    max_grad_norm: float = Field(1.0, ge=0)
    """Gradient clipping norm; 0 disables clipping."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Mixed precision: auto uses bf16 on CUDA GPUs that support it, fp16 on older ones, fp32 on CPU and MPS.
    An explicit bf16 or fp16 that the device cannot run is an error at train time, never a silent fallback."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% slower."""
    seed: int = 42
    """Seeds data shuffling, dropout, mixtures and from-scratch initialization."""
    logging_steps: int = Field(10, ge=1)
    """Log loss, learning rate and gradient norm every this many optimizer steps."""
    eval_strategy: Literal["auto", "no", "steps", "epoch"] = "auto"
    """auto: every eval_steps when eval data and eval_steps are given, every epoch with eval data only, else never."""
    eval_steps: int | None = Field(None, ge=1)
    """Evaluate every this many optimizer steps (eval_strategy steps)."""
    save_strategy: Literal["no", "steps", "epoch"] = "steps"
    """When to write checkpoints (needed to resume an interrupted run)."""
    save_steps: int = Field(500, ge=1)
    """Checkpoint every this many optimizer steps (save_strategy steps)."""
    save_total_limit: int | None = Field(None, ge=1)
    """Keep only the newest N checkpoints."""
    load_best_model_at_end: bool = False
    """Finish with the checkpoint whose metric_for_best_model was best (needs eval data, and saving at the
    evaluation steps)."""
    metric_for_best_model: str = "eval_loss"
    """Metric that decides the best checkpoint and early stopping."""
    greater_is_better: bool | None = None
    """Whether a larger metric is better; default: false for losses, true otherwise."""
    early_stopping_patience: int | None = Field(None, ge=1)
    """Stop after this many evaluations without improvement of metric_for_best_model (needs eval data)."""
    early_stopping_threshold: float = Field(0.0, ge=0)
    """Minimum improvement that counts as one."""
    router_aux_loss_coef: float | None = Field(None, ge=0)
    """Mixture-of-experts models: weight of the router load-balancing loss; default: the model config's value."""
    group_by_length: bool = False
    """Batch examples of similar length together to reduce padding."""
    dataloader_num_workers: int = Field(0, ge=0)
    """Background processes that collate batches; 0 collates in the training process."""

    @field_validator("eval_strategy", "save_strategy", mode="before")
    @classmethod
    def _unquoted_no(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `no` as false; that is what the user meant.
        return "no" if value is False else value

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainConfig:
        if self.warmup_ratio and self.warmup_steps:
            raise ConfigConflict(
                "train.warmup_steps", "set train.warmup_ratio or train.warmup_steps, not both"
            )
        return self
