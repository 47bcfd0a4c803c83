"""What gets trained: peft LoRA/DoRA/rsLoRA adapters, the full model, or the top layers (freeze)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ftkit.config.sections.adapter import FreezeAdapter, FullAdapter, LoraAdapter
from ftkit.errors import UserError
from ftkit.models.heads import CAUSAL_LM, SCORE_MODULES, Head

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParameterCount:
    total: int
    trainable: int

    def __str__(self) -> str:
        share = 100 * self.trainable / self.total if self.total else 0.0
        return f"{self.trainable:,} trainable of {self.total:,} parameters ({share:.2f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    total = trainable = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if hasattr(parameter, "ds_numel"):  # DeepSpeed ZeRO-3 partitions parameters
            count = parameter.ds_numel
        total += count
        trainable += count if parameter.requires_grad else 0
    return ParameterCount(total, trainable)


LORA_INITS: dict[str, bool | str] = {
    "default": True,
    "gaussian": "gaussian",
    "pissa": "pissa",
    "olora": "olora",
    # LoftQ's start is computed on the full-precision model before the adapter meets its quantized base
    # (models/loftq.py); attached to that base, or resumed, the adapter takes the default start.
    "loftq": True,
}
RESIDUAL_INITS = ("pissa", "olora")
"""Initializations that move part of each weight into the adapter: the base trains as a residual."""


def save_initial_adapter(model: nn.Module, directory: Path) -> None:
    """The adapter as initialized, saved as peft's conversion of a residual initialization needs it (with
    init_lora_weights=True in its config) before the first step."""
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True
    try:
        model.save_pretrained(directory)
    finally:
        config.init_lora_weights = init


def _apply_lora(model: nn.Module, adapter: LoraAdapter, new_token_ids: list[int], head: Head) -> nn.Module:
    from peft import LoraConfig, PeftModel, get_peft_model

    from ftkit.models.special_tokens import embedding_module_names

    if adapter.init_from:
        try:
            return _fast_lora(PeftModel.from_pretrained(model, adapter.init_from, is_trainable=True))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot continue from adapter.init_from={adapter.init_from!r}: {exc}") from None
    modules_to_save = list(adapter.modules_to_save)
    if new_token_ids:
        # The added tokens' embedding rows (and output rows) must learn: train those matrices in full. peft's
        # trainable_token_indices would be lighter, but TRL's fused LM-head loss reads the head's weight directly
        # and would not see row deltas.
        extra = [m for m in embedding_module_names(model) if m not in modules_to_save]
        if extra:
            log.info(
                "training %s in full for the %d added template tokens", ", ".join(extra), len(new_token_ids)
            )
        modules_to_save += extra
    config = LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=adapter.target_modules,
        modules_to_save=modules_to_save or None,
        use_dora=adapter.use_dora,
        use_rslora=adapter.use_rslora,
        init_lora_weights=LORA_INITS[adapter.init],
        ensure_weight_tying=bool(getattr(model.config, "tie_word_embeddings", False)),
        # SEQ_CLS trains and saves a reward model's new score head in full beside the adapter.
        task_type=head.task_type,
    )
    try:
        return _fast_lora(get_peft_model(model, config))
    except ValueError as exc:
        raise UserError(f"cannot add the LoRA adapter: {exc}. Check adapter.target_modules.") from None


def _fast_lora(model: nn.Module) -> nn.Module:
    from ftkit.models.lora_fast import use_fast_lora

    if swapped := use_fast_lora(model):
        log.debug("LoRA: %d linear layers train on ftkit's fused path (models/lora_fast.py)", swapped)
    return model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of decoder layers: the longest ModuleList of identical blocks."""
    stacks = [
        module
        for module in model.modules()
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1
    ]
    best = max(stacks, key=len, default=None)
    if best is None:
        raise UserError("adapter.type freeze: cannot find the decoder layers of this model")
    return best


def _apply_freeze(
    model: nn.Module, adapter: FreezeAdapter, new_token_ids: list[int], head: Head
) -> nn.Module:
    from ftkit.models.special_tokens import embedding_module_names

    if new_token_ids:
        untrained = [m for m in embedding_module_names(model) if m not in adapter.trainable_modules]
        if untrained:
            raise UserError(
                f"added template tokens need trained embeddings: add {', '.join(untrained)} to "
                "adapter.trainable_modules"
            )
    layers = decoder_layers(model)
    if adapter.trainable_layers > len(layers):
        raise UserError(
            f"adapter.trainable_layers={adapter.trainable_layers} but the model has {len(layers)} layers"
        )
    model.requires_grad_(False)
    for layer in list(layers)[-adapter.trainable_layers :]:
        layer.requires_grad_(True)
    if head.new_head:  # a new head learns from zero whatever else is frozen
        for name in SCORE_MODULES:
            if isinstance(getattr(model, name, None), nn.Module):
                getattr(model, name).requires_grad_(True)
    for suffix in adapter.trainable_modules:
        matched = [m for name, m in model.named_modules() if name == suffix or name.endswith("." + suffix)]
        if not matched:
            raise UserError(f"adapter.trainable_modules: no module named {suffix!r} in this model")
        for module in matched:
            module.requires_grad_(True)
    return model


def apply_adapter(
    model: nn.Module,
    adapter: LoraAdapter | FullAdapter | FreezeAdapter,
    new_token_ids: list[int] | None = None,
    head: Head = CAUSAL_LM,
) -> nn.Module:
    """Wrap or freeze the model as the adapter section says; logs the parameter counts.

    `new_token_ids` are tokens added for the chat template: their embedding rows are made trainable.
    `head` is the model's head (models/heads.py): a reward model's score head always trains.
    """
    new_token_ids = new_token_ids or []
    if isinstance(adapter, LoraAdapter):
        model = _apply_lora(model, adapter, new_token_ids, head)
    elif isinstance(adapter, FreezeAdapter):
        model = _apply_freeze(model, adapter, new_token_ids, head)
    else:
        model.requires_grad_(True)
    log.info("adapter %s: %s", adapter.type, count_parameters(model))
    return model
