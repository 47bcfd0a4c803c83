"""What the recipe's `auto` values become on a machine: device, mixed precision, weight dtype, attention.

Decision on unsupported precision: an explicit `precision: fp16` or `bf16` that the device cannot run is
an error (exit 2) that says what would work; silently training in another precision would change the
results without telling anyone. `precision: auto` picks the best the device has and logs it.

Device and precision are decided without importing torch on a machine that has no GPU driver at all
(the common laptop and CI case), so that `ftkit check` refuses the same precisions as `ftkit train`
and still answers in a second.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit.errors import UserError
from ftkit.models.attention import SEGMENTED

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe

log = logging.getLogger(__name__)

DTYPE_NAMES = ("bfloat16", "float16", "float32")
HALF = {"bf16": "bfloat16", "fp16": "float16"}
"""The weight dtype of each half precision."""
_GPU_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")
"""One of these exists on any Linux machine where torch could see a CUDA (or ROCm) GPU."""


def torch_dtype(name: str) -> Any:
    """The torch dtype called `name` (bfloat16, float16, float32)."""
    import torch

    return getattr(torch, name)


@dataclass(frozen=True)
class Runtime:
    device: str
    """cuda, mps or cpu."""
    precision: str
    """Mixed precision of the training step: bf16, fp16 or fp32."""
    dtype: Any
    """Dtype the weights are loaded in (a torch.dtype)."""
    attn_implementation: str | None
    """Requested attention kernel; None lets transformers choose (sdpa where the model supports it)."""
    liger_kernels: bool = False
    """Liger's fused Triton kernels (norms, rotary, SwiGLU) patched into the model by transformers."""


def _gpu_possible() -> bool:
    if sys.platform == "darwin":
        return True  # MPS
    return any(Path(path).exists() for path in _GPU_DRIVER_FILES)


def _cuda_available() -> bool:
    if not _gpu_possible():
        return False
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    if sys.platform != "darwin":
        return False
    import torch

    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if _cuda_available() else "mps" if _mps_available() else "cpu"
    if requested == "cuda" and not _cuda_available():
        raise UserError("model.device is cuda but no CUDA GPU is visible; use model.device: auto or cpu")
    if requested == "mps" and not _mps_available():
        raise UserError(
            "model.device is mps but Apple's MPS backend is not available; use model.device: auto"
        )
    return requested


def _bf16_supported(device: str) -> bool:
    if device == "cpu":
        return True  # torch's CPU autocast runs it
    if device != "cuda":
        return False
    import torch

    return torch.cuda.is_bf16_supported()


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        if device == "cuda":
            return "bf16" if _bf16_supported(device) else "fp16"
        return "fp32"
    if requested == "bf16" and not _bf16_supported(device):
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


def resolve_dtype_name(requested: str, precision: str, adapter_type: str, device: str) -> str:
    if requested != "auto":
        return requested
    if precision in HALF and adapter_type == "lora" and device != "cpu":
        # The base is frozen: keep it in half precision; peft keeps the adapter weights in float32.
        return HALF[precision]
    # Trained weights stay float32 masters under mixed precision; on CPU float32 is also the fast path.
    return "float32"


def resolve_dtype(requested: str, precision: str, adapter_type: str, device: str) -> Any:
    return torch_dtype(resolve_dtype_name(requested, precision, adapter_type, device))


def resolve_attention(requested: str, device: str, dtype: Any) -> str | None:
    """`dtype` is a torch dtype or its name."""
    half = str(dtype).removeprefix("torch.") in HALF.values()
    if requested != "auto":
        if requested.startswith("flash_attention") and device != "cuda":
            raise UserError(
                f"model.attn_implementation {requested} needs a CUDA GPU; use auto, sdpa or eager"
            )
        if requested.startswith("flash_attention") and not half:
            raise UserError(
                f"{requested} needs half-precision weights; set train.precision bf16/fp16 or use sdpa"
            )
        return requested
    if device == "cuda" and half and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return None


def resolve_liger(device: str) -> bool:
    """Liger's kernels where they run (CUDA, Triton) and are installed (`pip install liger-kernel`).
    TRL's own fused LM head stays in charge of the loss (it turns Liger's fused cross-entropy off)."""
    return device == "cuda" and importlib.util.find_spec("liger_kernel") is not None


@dataclass(frozen=True)
class RuntimePlan:
    """The runtime decided without torch (names instead of torch dtypes): what `ftkit check` shows."""

    device: str
    precision: str
    dtype: str
    attn_implementation: str | None
    liger_kernels: bool = False


def plan_runtime(recipe: Recipe, device: str | None = None) -> RuntimePlan:
    """Device, precision, weight dtype and attention for the recipe on this machine (or on `device`,
    for checking a recipe meant for another machine)."""
    device = device or resolve_device(recipe.model.device)
    precision = resolve_precision(recipe.train.precision, device)
    dtype = resolve_dtype_name(recipe.model.dtype, precision, recipe.adapter.type, device)
    attention = resolve_attention(recipe.model.attn_implementation, device, dtype)
    if attention is None and (recipe.data.packing or recipe.data.padding_free):
        # Examples end to end in one row: attend within each, not over the whole row (models/attention.py).
        attention = SEGMENTED
    return RuntimePlan(device, precision, dtype, attention, resolve_liger(device))


def resolve_runtime(recipe: Recipe) -> Runtime:
    plan = plan_runtime(recipe)
    return Runtime(
        plan.device, plan.precision, torch_dtype(plan.dtype), plan.attn_implementation, plan.liger_kernels
    )
