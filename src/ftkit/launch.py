"""How training starts: checks first (preflight), then in this process or relaunched under torchrun.

This module is the edge that reads the launcher's environment (RANK, WORLD_SIZE, ...); everything
inside receives a LaunchContext instead. Nothing below imports it back.
"""

from __future__ import annotations

import logging
import os
import signal
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
        launched="TORCHELASTIC_RUN_ID" in os.environ or "RANK" in os.environ,
    )


def processes(recipe: Recipe) -> int:
    wanted = recipe.distributed.nproc_per_node
    if wanted == "auto":
        import torch

        return max(torch.cuda.device_count(), 1)
    return wanted


def torchrun_arguments(recipe: Recipe, nproc: int) -> list[str]:
    """torchrun's options for this node: processes, nodes, and where they meet."""
    dist = recipe.distributed
    arguments = [f"--nproc_per_node={nproc}", f"--nnodes={dist.nnodes}", "--max_restarts=0"]
    if dist.rdzv_endpoint:
        return [
            *arguments,
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={dist.rdzv_endpoint}",
            f"--rdzv_id={dist.rdzv_id or recipe.logging.run_name}",
            f"--rdzv_conf=join_timeout={dist.rendezvous_timeout}",
        ]
    return [
        *arguments,
        f"--node_rank={dist.node_rank}",
        f"--master_addr={dist.master_addr}",
        f"--master_port={dist.master_port}",
        f"--rdzv_conf=timeout={dist.rendezvous_timeout}",
    ]


def relaunch(argv: list[str], recipe: Recipe, nproc: int) -> int:
    """Run `ftkit <argv>` on this node under torchrun (its own launcher, in this process, so that a
    failed rendezvous is an exception to explain rather than a traceback); returns the workers' exit code."""
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.run import get_args_parser, run

    arguments = [*torchrun_arguments(recipe, nproc), "-m", "ftkit", *argv]
    dist = recipe.distributed
    where = f" (node {dist.node_rank} of {dist.nnodes})" * (dist.nnodes > 1 and not dist.rdzv_endpoint)
    log.info("launching %d process(es)%s: torchrun %s", nproc, where, " ".join(arguments))
    try:
        run(get_args_parser().parse_args(arguments))
    except ChildFailedError as exc:
        code = exc.get_first_failure()[1].exitcode
        if code in (Interrupted.exit_code, -signal.SIGINT):  # the workers saw the Ctrl-C first
            raise KeyboardInterrupt from None
        return code or 1
    except SignalException as exc:
        raise KeyboardInterrupt from exc
    except (DistError, RendezvousError) as exc:
        raise UserError(rendezvous_failure(recipe, exc)) from None
    return 0


def rendezvous_failure(recipe: Recipe, exc: Exception) -> str:
    """Why the nodes did not start together, and what to check."""
    dist = recipe.distributed
    place = dist.rdzv_endpoint or f"{dist.master_addr}:{dist.master_port}"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"the {dist.nnodes} node(s) of this run did not meet at {place} within "
        f"distributed.rendezvous_timeout={dist.rendezvous_timeout}s ({detail}). Start the same "
        f"`ftkit train` on every node ({'with its own distributed.node_rank, ' * (not dist.rdzv_endpoint)}"
        f"nnodes={dist.nnodes}), check that {place.rpartition(':')[0]} is reachable from each node and that "
        f"port {place.rpartition(':')[2]} is open between them (firewall), or raise "
        "distributed.rendezvous_timeout if nodes start far apart."
    )


def _prepares_output_dir(recipe: Recipe, launching: bool) -> bool:
    # Under a multi-node launch only node 0's launcher knows it holds global rank 0 (with an elastic
    # rendezvous none does); there the rank-0 worker prepares the folder instead.
    dist = recipe.distributed
    return not launching or (dist.node_rank == 0 and dist.rdzv_endpoint is None)


def train(recipe: Recipe, argv: list[str]) -> int:
    """Train the recipe in this process, or under torchrun when it asks for several processes.

    Everything that can be checked without weights is checked first (preflight), before anything loads
    or is written; only then is the output_dir prepared (a failed run replaced, leftovers removed)."""
    from ftkit.preflight import preflight
    from ftkit.resume import follow_plan, prepare_output_dir
    from ftkit.stages import stage_for

    context = context_from_environment()
    if not context.is_main:
        logging.getLogger("ftkit").setLevel(logging.WARNING)  # rank 0 reports for everyone
    found = preflight(recipe, output=context.is_main)
    start = found.start if found.start is not None else follow_plan(recipe)
    quiet_library_progress()
    try:
        nproc = processes(recipe)
        dist = recipe.distributed
        # DeepSpeed and FSDP need a process group even in one process: torchrun sets it up (DeepSpeed
        # alone would look for MPI).
        launching = not context.launched and (
            nproc > 1 or dist.nnodes > 1 or dist.deepspeed is not None or dist.fsdp is not None
        )
        if context.is_main and _prepares_output_dir(recipe, launching):
            prepare_output_dir(start)
        if launching:
            if recipe.data.cache:
                prepare_data(recipe)  # tokenize once per node, here; its workers then load the cached result
            elif recipe.data.streaming:
                # Each worker reads its own share: check here that every share has examples, so that
                # a share left empty stops the run with one message instead of in one worker.
                from ftkit.data.stream import check_shares

                check_shares(recipe, nproc * dist.nnodes)
            code = relaunch(argv, recipe, nproc)
            return user_error_code(recipe, code)
        from ftkit.stages.runner import run_stage

        summary = run_stage(recipe, context, stage_for(recipe), start)
    except KeyboardInterrupt:
        if context.launched:  # a worker: its launcher reports the interruption, once
            raise Interrupted("") from None
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


def _generates(recipe: Recipe) -> bool:
    from ftkit.stages import stage_for

    return stage_for(recipe).head.generates


def next_commands(recipe: Recipe, argv: list[str]) -> list[str]:
    """What a user runs after training this recipe."""
    import shlex

    target = shlex.join(_rerun_arguments(argv))
    commands = []
    if recipe.adapter.type == "lora":
        commands.append(f"ftkit export {target}")
    if recipe.model.template and _generates(recipe):
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
