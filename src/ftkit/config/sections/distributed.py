"""`distributed:` how many processes train, on how many machines, and with which backend."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ftkit.config.sections.base import ConfigConflict, Section


class DistributedConfig(Section):
    """Data-parallel launch. With several processes or nodes, `ftkit train` runs itself under torchrun,
    once per node: every node runs the same command with its own `node_rank` (or joins `rdzv_endpoint`)."""

    nproc_per_node: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    """Processes on this machine (`ftkit train --nproc N` sets it); auto: one per GPU (one on a CPU-only
    machine)."""
    nnodes: int = Field(1, ge=1)
    """Machines in the run, each with nproc_per_node processes."""
    node_rank: int = Field(0, ge=0)
    """This machine's place among the nnodes (0 is the one at master_addr); SLURM: $SLURM_NODEID."""
    master_addr: str = "127.0.0.1"
    """Address of node 0, reachable from every node (a hostname or IP; SLURM: the first host of the job)."""
    master_port: int = Field(29500, ge=1024, le=65535)
    """Port on master_addr where the processes meet; must be open between the nodes."""
    rdzv_endpoint: str | None = None
    """host:port of a c10d rendezvous (torchrun's elastic launch) instead of master_addr/master_port and
    node_rank: node ranks are assigned as the nodes join."""
    rdzv_id: str | None = None
    """Id that the nodes of one run share at rdzv_endpoint; default: logging.run_name."""
    rendezvous_timeout: int = Field(900, ge=1)
    """Seconds the nodes wait for each other before the run stops with an error naming the address."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Process-group backend; auto: nccl on CUDA, gloo elsewhere."""
    deepspeed: str | None = None
    """DeepSpeed config: a preset name (zero2, zero3, zero3_offload) or a path to a JSON file."""
    fsdp: Literal["full_shard", "shard_grad_op", "hybrid_shard"] | None = None
    """PyTorch FSDP through transformers/Accelerate, one unit per decoder layer (the model's own layer class):
    full_shard shards weights, gradients and optimizer states (FSDP2); shard_grad_op keeps whole weights
    between forward and backward (FSDP2); hybrid_shard shards within each node and replicates across nodes
    (FSDP1, deprecated upstream). train.gradient_checkpointing becomes FSDP's activation checkpointing."""
    fsdp_cpu_offload: bool = False
    """With fsdp: keep the sharded weights and optimizer states in CPU memory between uses (slower, fits more)."""
    find_unused_parameters: bool = False
    """Let DDP tolerate parameters without gradients in a step (needed by some MoE models); slower."""

    @model_validator(mode="after")
    def _consistent(self) -> DistributedConfig:
        if self.node_rank >= self.nnodes:
            raise ConfigConflict(
                ("distributed.node_rank", "distributed.nnodes"),
                f"distributed.node_rank is {self.node_rank} but ranks of {self.nnodes} node(s) are 0 to "
                f"{self.nnodes - 1}",
            )
        if self.fsdp and self.deepspeed:
            raise ConfigConflict(
                ("distributed.fsdp", "distributed.deepspeed"),
                "distributed.fsdp and distributed.deepspeed both shard the model; choose one",
            )
        if self.fsdp_cpu_offload and not self.fsdp:
            raise ConfigConflict(
                "distributed.fsdp_cpu_offload", "distributed.fsdp_cpu_offload needs distributed.fsdp"
            )
        if self.rdzv_id and not self.rdzv_endpoint:
            raise ConfigConflict("distributed.rdzv_id", "distributed.rdzv_id needs distributed.rdzv_endpoint")
        if self.rdzv_endpoint is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigConflict(
                    "distributed.rdzv_endpoint",
                    f"distributed.rdzv_endpoint {self.rdzv_endpoint!r} is not host:port (e.g. node001:29400)",
                )
            if self.node_rank:
                raise ConfigConflict(
                    ("distributed.node_rank", "distributed.rdzv_endpoint"),
                    "with distributed.rdzv_endpoint the node ranks are assigned as nodes join; "
                    "remove distributed.node_rank",
                )
        return self
