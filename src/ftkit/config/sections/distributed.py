"""`distributed:` how many processes train, and with which backend."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ftkit.config.sections.base import Section


class DistributedConfig(Section):
    """Data-parallel launch. With nproc_per_node > 1, `ftkit train` relaunches itself under torchrun."""

    nproc_per_node: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    """Processes on this machine; auto: one per GPU (one on a CPU-only machine)."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Process-group backend; auto: nccl on CUDA, gloo elsewhere."""
    deepspeed: str | None = None
    """DeepSpeed config: a preset name (zero2, zero3, zero3_offload) or a path to a JSON file."""
    master_port: int = Field(29500, ge=1024, le=65535)
    """Port of the rendezvous between the processes."""
    find_unused_parameters: bool = False
    """Let DDP tolerate parameters without gradients in a step (needed by some MoE models); slower."""
