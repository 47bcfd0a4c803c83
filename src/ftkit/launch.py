"""How training starts: checks first (preflight), then in this process or relaunched under torchrun.

This module is the edge that reads the launcher's environment (RANK, WORLD_SIZE, ...); everything
inside receives a LaunchContext instead. Nothing below imports it back.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from ftkit.config import Recipe
from ftkit.console import quiet_library_progress
from ftkit.distributed import LaunchContext
from ftkit.errors import Interrupted, UserError

log = logging.getLogger(__name__)


def context_from_environment() -> LaunchContext:
    """This process's place in its group, from the variables torchrun (or another launcher) sets."""
    return LaunchContext(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


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


def train(recipe: Recipe, argv: list[str]) -> int:
    """Train the recipe in this process, or under torchrun when it asks for several processes.

    Everything that can be checked without weights is checked first (preflight), before anything loads
    or is written; only then is the output_dir prepared (a failed run replaced, leftovers removed)."""
    from ftkit.preflight import preflight
    from ftkit.resume import follow_plan, prepare_output_dir
    from ftkit.stages import get_stage

    context = context_from_environment()
    if not context.is_main:
        logging.getLogger("ftkit").setLevel(logging.WARNING)  # rank 0 reports for everyone
    found = preflight(recipe, output=context.is_main)
    start = found.start if found.start is not None else follow_plan(recipe)
    quiet_library_progress()
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

        summary = run_stage(recipe, context, get_stage(recipe.stage), start)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(recipe, argv)) from None
    if summary is not None:
        print("\n".join(summary.lines(next_commands(recipe, argv))), file=sys.stderr)
    return 0


def _rerun_arguments(argv: list[str]) -> list[str]:
    """The recipe and its overrides, without the ones that only say how this run started."""
    return [
        arg
        for arg in argv[1:]
        if not arg.startswith(("train.resume_from_checkpoint=", "train.overwrite_output_dir="))
    ]


def next_commands(recipe: Recipe, argv: list[str]) -> list[str]:
    """What a user runs after training this recipe."""
    import shlex

    target = shlex.join(_rerun_arguments(argv))
    commands = []
    if recipe.adapter.type == "lora":
        commands.append(f"ftkit export {target}")
    if recipe.model.template:
        commands.append(f"ftkit chat {target}")
    if recipe.data.eval or recipe.data.val_size is not None:
        commands.append(f"ftkit eval {target}")
    return commands


def interrupted_message(recipe: Recipe, argv: list[str]) -> str:
    """What Ctrl-C left behind, and the command that continues it."""
    import shlex

    from ftkit.rundir import inspect_run_dir

    state = inspect_run_dir(recipe.train.output_dir)
    kept = [argv[0], *_rerun_arguments(argv)]
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

    bundle = load_tokenizer_and_template(recipe.model)
    build_data(recipe, bundle.tokenizer, bundle.template)


def user_error_code(recipe: Recipe, code: int) -> int:
    """torchrun reports any failed worker as 1; a user error recorded by rank 0 is still exit code 2."""
    from ftkit.rundir import read_run

    if code == 0:
        return 0
    run = read_run(recipe.train.output_dir)
    return UserError.exit_code if run and run.get("user_error") else code
