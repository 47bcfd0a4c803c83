"""How training starts: in this process, or relaunched under torchrun for several processes; DeepSpeed presets.

This module is the edge that reads the launcher's environment (RANK, WORLD_SIZE, ...); everything
inside receives a LaunchContext instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.config import Recipe
from ftkit.errors import Interrupted, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> LaunchContext:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
        )


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
    """A preset's dict, or the path of a user's JSON config (checked to exist)."""
    if value is None:
        return None
    if value in DEEPSPEED_PRESETS:
        return DEEPSPEED_PRESETS[value]
    if not Path(value).is_file():
        presets = ", ".join(DEEPSPEED_PRESETS)
        raise UserError(f"distributed.deepspeed {value!r} is neither a preset ({presets}) nor a JSON file")
    return value


def processes(recipe: Recipe) -> int:
    wanted = recipe.distributed.nproc_per_node
    if wanted == "auto":
        import torch

        return max(torch.cuda.device_count(), 1)
    return wanted


def relaunch(argv: list[str], nproc: int, port: int) -> int:
    """Run `ftkit <argv>` under torchrun with `nproc` processes; returns torchrun's exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={port}",
        "-m",
        "ftkit",
        *argv,
    ]
    log.info("launching %d processes: %s", nproc, " ".join(command[2:]))
    return subprocess.call(command)


def check_stage(stage: str) -> str:
    """The `module:STAGE` of a stage's declaration; a stage without one is a user error."""
    from ftkit.stages import STAGES

    if stage not in STAGES:
        available = ", ".join(sorted(STAGES))
        raise UserError(f"stage {stage} cannot be trained by this version of ftkit (available: {available})")
    return STAGES[stage]


def stage_runner(stage: str) -> Any:
    """The Stage declaration of a stage, imported on demand (stages import torch and the trainers)."""
    module, attribute = check_stage(stage).split(":")
    return getattr(importlib.import_module(module), attribute)


def train(recipe: Recipe, argv: list[str]) -> int:
    """Train the recipe in this process, or under torchrun when it asks for several processes.

    Everything that can be checked without weights is checked first (preflight), before anything loads
    or is written; only then is the output_dir prepared (a failed run replaced, leftovers removed)."""
    from ftkit.preflight import preflight
    from ftkit.resume import follow_plan, prepare_output_dir

    context = LaunchContext.from_environment()
    if not context.is_main:
        logging.getLogger("ftkit").setLevel(logging.WARNING)  # rank 0 reports for everyone
    found = preflight(recipe, output=context.is_main)
    start = found.start if found.start is not None else follow_plan(recipe)
    try:
        if context.is_main:
            prepare_output_dir(start)
        nproc = processes(recipe)
        if nproc > 1 and context.world_size == 1:
            if recipe.data.cache:
                prepare_data(recipe)  # tokenize once, here; every worker then loads the cached result
            code = relaunch(argv, nproc, recipe.distributed.master_port)
            return user_error_code(recipe, code)
        from ftkit.stages.runner import run_stage

        run_stage(recipe, context, stage_runner(recipe.stage), start)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(recipe, argv)) from None
    return 0


def interrupted_message(recipe: Recipe, argv: list[str]) -> str:
    """What Ctrl-C left behind, and the command that continues it."""
    import shlex

    from ftkit.rundir import inspect_run_dir

    state = inspect_run_dir(recipe.train.output_dir)
    kept = [
        arg
        for arg in argv
        if not arg.startswith(("train.resume_from_checkpoint=", "train.overwrite_output_dir="))
    ]
    if state.latest is None:
        return f"interrupted before the first checkpoint; nothing to resume. Start over with: ftkit {shlex.join(kept)}"
    return (
        f"interrupted; the run in {state.path} is saved up to {state.latest.name}. Resume it with: "
        f"ftkit {shlex.join([*kept, 'train.resume_from_checkpoint=latest'])}"
    )


def prepare_data(recipe: Recipe) -> None:
    """Build (and cache) the recipe's processed data in this process."""
    from ftkit.data.pipeline import build_data
    from ftkit.models.loader import load_tokenizer_and_template

    bundle = load_tokenizer_and_template(recipe.model, recipe.stage)
    build_data(recipe, bundle.tokenizer, bundle.template)


def user_error_code(recipe: Recipe, code: int) -> int:
    """torchrun reports any failed worker as 1; a user error recorded by rank 0 is still exit code 2."""
    from ftkit.rundir import read_run

    if code == 0:
        return 0
    run = read_run(recipe.train.output_dir)
    return UserError.exit_code if run and run.get("user_error") else code
