"""A run's output_dir: what it holds (a completed, running, killed or failed run, its checkpoints), the
resolved recipe and run.json written while it trains, and the final artifacts moved in at the end.

`run.json` is written when a run starts (status running, with the process id and host) and rewritten
when it ends (completed, failed or interrupted). A run whose status says running but whose process is
gone was killed. Consumers such as `ftkit export` trust an output_dir only when its run.json says completed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit import __version__
from ftkit.atomic import apply_umask, atomic_write_text, pid_alive
from ftkit.config import Recipe, dump_recipe
from ftkit.config.redact import redact
from ftkit.errors import UserError
from ftkit.runfiles import (  # noqa: F401  (the run directory's names, also read from here)
    CHECKPOINT_PREFIX,
    COMPLETE_CHECKPOINT_MARKER,
    FINAL_STAGING,
    FINAL_WEIGHTS,
    INITIAL_ADAPTER,
    RECIPE_FILE,
    RESOLVED_RECIPE_FILE,
    RUN_FILE,
    SCRATCH_BASE,
    read_run,
    recorded_base,
)


def process_start(pid: int) -> int | None:
    """When the process started (Linux: clock ticks since boot), to tell it from a later one with its id."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _process_alive(pid: int, started: int | None) -> bool:
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def run_status(run: dict[str, Any]) -> str:
    """The recorded status, except that a running run whose process is gone (on this host) was killed."""
    status = str(run.get("status", "unknown"))
    if status != "running" or not isinstance(run.get("pid"), int):
        return status
    if run.get("host") not in (None, socket.gethostname()):
        return "running"  # on another machine: ftkit cannot tell
    return "running" if _process_alive(run["pid"], run.get("process_start")) else "killed"


def checkpoint_step(path: Path) -> int | None:
    step = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(step) if path.name.startswith(CHECKPOINT_PREFIX) and step.isdigit() else None


def is_complete_checkpoint(path: Path) -> bool:
    """The checkpoint's trainer state was written (last) and reads back as the state of its step."""
    marker = path / COMPLETE_CHECKPOINT_MARKER
    if not marker.is_file():
        return False
    try:
        state = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(state, dict) and state.get("global_step") == checkpoint_step(path)


@dataclass
class RunDirState:
    """What an output_dir holds."""

    path: Path
    exists: bool = False
    empty: bool = True
    run: dict[str, Any] | None = None
    status: str | None = None
    """completed, running, killed, failed, interrupted; None without run.json."""
    checkpoints: list[Path] = field(default_factory=list)
    """Complete checkpoints, oldest first."""
    incomplete: list[Path] = field(default_factory=list)
    """Checkpoints cut short and staging folders left by a killed process."""
    final_weights: list[str] = field(default_factory=list)

    @property
    def latest(self) -> Path | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def describe(self) -> str:
        if not self.exists or self.empty:
            return "new"
        if self.run is None:
            return "not empty, no ftkit run"
        text = f"holds a {self.status} run"
        if self.status == "killed":
            text += f" (its process {self.run.get('pid')} is gone)"
        if self.checkpoints:
            text += f", last complete checkpoint {self.latest.name if self.latest else ''}"
        if self.incomplete:
            text += f", {len(self.incomplete)} incomplete ({', '.join(p.name for p in self.incomplete)})"
        if self.status in ("killed", "failed", "interrupted") and self.checkpoints:
            text += "; resume with train.resume_from_checkpoint=latest"
        return text


def inspect_run_dir(output_dir: str | Path) -> RunDirState:
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"train.output_dir {path} is a file; give a folder (it is created when missing)")
    state = RunDirState(path)
    if not path.is_dir():
        return state
    children = list(path.iterdir())
    state.exists, state.empty = True, not children
    state.run = read_run(path)
    if state.run is not None:
        state.status = run_status(state.run)
    steps = sorted(
        (checkpoint_step(child), child) for child in children if checkpoint_step(child) is not None
    )
    for _, child in steps:
        (state.checkpoints if is_complete_checkpoint(child) else state.incomplete).append(child)
    state.incomplete += [child for child in children if child.name == FINAL_STAGING]
    state.final_weights = [name for name in FINAL_WEIGHTS if (path / name).is_file()]
    return state


def clear_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "ftkit": __version__}
    for package in (
        "torch",
        "transformers",
        "peft",
        "trl",
        "datasets",
        "accelerate",
        "deepspeed",
        "bitsandbytes",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


class RunRecord:
    """The run.json of one run, written atomically at every update."""

    def __init__(self, recipe: Recipe, is_main: bool = True) -> None:
        self.output_dir = Path(recipe.train.output_dir)
        self.is_main = is_main
        self.data: dict[str, Any] = {
            "ftkit_version": __version__,
            "status": "running",
            "stage": recipe.stage,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "pid": os.getpid(),
            "process_start": process_start(os.getpid()),
            "host": socket.gethostname(),
        }
        if is_main:
            atomic_write_text(self.output_dir / RECIPE_FILE, dump_recipe(recipe, defaults=False))
            atomic_write_text(self.output_dir / RESOLVED_RECIPE_FILE, dump_recipe(recipe))
            self._write()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self._write()

    def finish(self, status: str, **fields: Any) -> None:
        self.data.update(fields, status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._write()

    def fail(self, exc: BaseException) -> None:
        """Record why the run stopped; `user_error` lets a launcher report exit code 2 for it."""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        self.finish(status, error=f"{type(exc).__name__}: {exc}", user_error=isinstance(exc, UserError))

    def _write(self) -> None:
        if self.is_main:
            text = json.dumps(redact(self.data), indent=2, default=str) + "\n"
            atomic_write_text(self.output_dir / RUN_FILE, text)


def publish(staging: Path, output_dir: Path) -> list[str]:
    """Move the files saved in `staging` into output_dir (each rename atomic) and remove staging."""
    apply_umask(staging)
    moved = []
    for item in sorted(staging.iterdir()):
        destination = output_dir / item.name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(item, destination)
        moved.append(item.name)
    staging.rmdir()
    return moved
