"""`adapter:` what is trained: a LoRA adapter, the full model, or only some layers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from ftkit.config.sections.base import Section


class LoraAdapter(Section):
    """Train low-rank adapters on frozen weights (peft LoRA, optionally DoRA or rsLoRA)."""

    type: Literal["lora"] = "lora"
    """Selects this adapter kind."""
    r: int = Field(16, ge=1)
    """Rank of the update matrices."""
    alpha: float = Field(32, gt=0)
    """Scaling numerator: the update is scaled by alpha / r (alpha / sqrt(r) with use_rslora)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: str | list[str] = "all-linear"
    """Modules that get adapters: all-linear (every linear layer but the output head) or a list of names."""
    modules_to_save: list[str] = Field(default_factory=list)
    """Modules trained in full and saved with the adapter, e.g. [embed_tokens, lm_head] after adding tokens."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilized scaling alpha / sqrt(r)."""
    init: Literal["default", "gaussian", "pissa", "olora", "loftq"] = "default"
    """How the adapter starts (peft's init_lora_weights): default (A random, B zero: the model starts
    unchanged), gaussian (A from a Gaussian scaled by rank), pissa (A and B from the weights' principal
    singular vectors; the base keeps the rest), olora (from a QR decomposition of the weights). pissa and
    olora change the base while training; the saved adapter is converted to apply to the original base.
    loftq (QLoRA only): the adapter starts where it cancels model.quantization's error, and the quantized
    base it belongs to is kept in the run (models/loftq.py)."""
    loftq_iterations: int = Field(1, ge=1)
    """init: loftq: alternations of quantizing and fitting the correction (the paper uses 1 to 5)."""
    loraplus_lr_ratio: float | None = Field(None, ge=1)
    """LoRA+: the B matrices learn this many times faster than the A matrices (train.learning_rate), through
    peft's LoRA+ optimizer; the paper suggests 16 with a learning rate about half the usual."""
    init_from: str | None = None
    """Directory of an existing adapter to continue training instead of starting a new one."""

    @field_validator("type", mode="before")
    @classmethod
    def _default_type(cls, value: object) -> object:
        return "lora" if value is None else value

    @field_validator("target_modules")
    @classmethod
    def _named_or_all_linear(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value != "all-linear":
            return [value]
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one module, or be all-linear")
        return value


class FullAdapter(Section):
    """Train every weight of the model."""

    type: Literal["full"]
    """Selects this adapter kind."""


class FreezeAdapter(Section):
    """Train only the last decoder layers (and named modules); everything else stays frozen."""

    type: Literal["freeze"]
    """Selects this adapter kind."""
    trainable_layers: int = Field(2, ge=1)
    """Number of decoder layers, counted from the top, that are trained."""
    trainable_modules: list[str] = Field(default_factory=list)
    """Extra modules trained in full, matched by name suffix (e.g. lm_head, embed_tokens)."""


def _adapter_type(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type") or "lora"
    return getattr(value, "type", None) or "lora"


AdapterConfig = Annotated[
    Annotated[LoraAdapter, Tag("lora")]
    | Annotated[FullAdapter, Tag("full")]
    | Annotated[FreezeAdapter, Tag("freeze")],
    Discriminator(_adapter_type),
]
