"""Score the LM head only where labels are trained, on every device.

TRL's trainers project hidden states through the LM head in tiles without materializing the logits,
and on Triton devices they project only the positions whose label is trained. Elsewhere (a CPU) they
project every position, prompt tokens included, to keep tile shapes fixed for compilers such as
Neuron's; a CPU does not need that, and with a real vocabulary most of a step's time is that
projection. This switches TRL's choice to the trained positions on every device but XLA ones.
"""

from __future__ import annotations

import torch

_NEEDS_FIXED_SHAPES = ("xla", "neuron", "hpu")


def _compact_unless_compiled(device: torch.device) -> bool:
    return device.type not in _NEEDS_FIXED_SHAPES


def use_compact_lm_head() -> None:
    """Make TRL's fused LM head compact (trained positions only) on this process's devices."""
    import trl.trainer.utils as trl_utils

    trl_utils._use_triton = (
        _compact_unless_compiled  # only decides compactness; the kernel choice is separate
    )
