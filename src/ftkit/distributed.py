"""What a process knows about the group it trains in, and the DeepSpeed presets.

The launcher's environment (RANK, WORLD_SIZE, ...) is read once, by launch.py, into a LaunchContext;
everything else receives the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import UserError


@dataclass(frozen=True)
class LaunchContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False
    """Started by a launcher (torchrun): a worker, even in a group of one, never launches again."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_OPTIMIZER_AUTO = {
    "type": "AdamW",
    "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
}
_COMMON = {
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
}
DEEPSPEED_PRESETS: dict[str, dict[str, Any]] = {
    "zero2": {
        **_COMMON,
        "zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True},
    },
    "zero3": {
        **_COMMON,
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": False,
            "contiguous_gradients": True,
            "stage3_gather_16bit_weights_on_model_save": True,
        },
    },
    "zero3_offload": {
        **_COMMON,
        "optimizer": _OPTIMIZER_AUTO,
        "zero_optimization": {
            "stage": 3,
            "offload_optimizer": {"device": "cpu", "pin_memory": True},
            "offload_param": {"device": "cpu", "pin_memory": True},
            "stage3_gather_16bit_weights_on_model_save": True,
        },
    },
}


def deepspeed_config(value: str | None) -> dict[str, Any] | str | None:
    """A preset's dict, or the path of a user's JSON config (checked to exist; preflight reads it)."""
    if value is None:
        return None
    if value in DEEPSPEED_PRESETS:
        return DEEPSPEED_PRESETS[value]
    if not Path(value).is_file():
        presets = ", ".join(DEEPSPEED_PRESETS)
        raise UserError(f"distributed.deepspeed {value!r} is neither a preset ({presets}) nor a JSON file")
    return value
