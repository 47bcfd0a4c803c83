"""What the recipe's `auto` values become on this machine: device, mixed precision, weight dtype, attention.

Decision on unsupported precision: an explicit `precision: fp16` or `bf16` that the device cannot run is
an error (exit 2) that says what would work; silently training in another precision would change the
results without telling anyone. `precision: auto` picks the best the device has and logs it.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import torch

from ftkit.config.recipe import Recipe
from ftkit.errors import UserError

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: str
    """cuda, mps or cpu."""
    precision: str
    """Mixed precision of the training step: bf16, fp16 or fp32."""
    dtype: torch.dtype
    """Dtype the weights are loaded in."""
    attn_implementation: str | None
    """Requested attention kernel; None lets transformers choose (sdpa where the model supports it)."""


def resolve_device(requested: str) -> str:
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise UserError("model.device is cuda but no CUDA GPU is visible; use model.device: auto or cpu")
    if requested == "mps" and not mps:
        raise UserError(
            "model.device is mps but Apple's MPS backend is not available; use model.device: auto"
        )
    return requested


def resolve_precision(requested: str, device: str) -> str:
    bf16_ok = device == "cpu" or (device == "cuda" and torch.cuda.is_bf16_supported())
    if requested == "auto":
        if device == "cuda":
            return "bf16" if bf16_ok else "fp16"
        return "fp32"
    if requested == "bf16" and not bf16_ok:
        raise UserError(
            f"train.precision is bf16 but this {device} device does not support bfloat16; "
            "use precision: fp16 (older CUDA GPUs), fp32, or auto"
        )
    if requested == "fp16" and device != "cuda":
        raise UserError(
            f"train.precision is fp16, which needs a CUDA GPU (this machine trains on {device}); "
            "use precision: auto (fp32 here) or bf16"
        )
    return requested


def resolve_dtype(requested: str, precision: str, adapter_type: str, device: str) -> torch.dtype:
    if requested != "auto":
        return DTYPES[requested]
    if precision in HALF and adapter_type == "lora" and device != "cpu":
        # The base is frozen: keep it in half precision; peft keeps the adapter weights in float32.
        return HALF[precision]
    # Trained weights stay float32 masters under mixed precision; on CPU float32 is also the fast path.
    return torch.float32


def resolve_attention(requested: str, device: str, dtype: torch.dtype) -> str | None:
    if requested != "auto":
        if requested.startswith("flash_attention") and device != "cuda":
            raise UserError(
                f"model.attn_implementation {requested} needs a CUDA GPU; use auto, sdpa or eager"
            )
        if requested.startswith("flash_attention") and dtype == torch.float32:
            raise UserError(
                f"{requested} needs half-precision weights; set train.precision bf16/fp16 or use sdpa"
            )
        return requested
    if (
        device == "cuda"
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn")
    ):
        return "flash_attention_2"
    return None


def resolve_runtime(recipe: Recipe) -> Runtime:
    device = resolve_device(recipe.model.device)
    precision = resolve_precision(recipe.train.precision, device)
    dtype = resolve_dtype(recipe.model.dtype, precision, recipe.adapter.type, device)
    attention = resolve_attention(recipe.model.attn_implementation, device, dtype)
    return Runtime(device, precision, dtype, attention)
