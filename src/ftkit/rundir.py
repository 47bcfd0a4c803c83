"""A run's output_dir: refusing to clobber another run, the resolved recipe, run.json, final artifacts.

`run.json` is written when a run starts (status running) and rewritten when it ends (completed or
failed). Consumers such as `ftkit export` trust an output_dir only when its run.json says completed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ftkit import __version__
from ftkit.atomic import atomic_write_text
from ftkit.config import Recipe, dump_recipe
from ftkit.config.redact import redact
from ftkit.errors import UserError

RUN_FILE = "run.json"
RECIPE_FILE = "recipe.yaml"
"""The recipe as given (bases merged, overrides applied): `ftkit train <output_dir>/recipe.yaml` re-runs it."""
RESOLVED_RECIPE_FILE = "recipe.resolved.yaml"
"""Every key with the value this run used, defaults included."""


def read_run(output_dir: str | Path) -> dict[str, Any] | None:
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def prepare_output_dir(recipe: Recipe) -> Path:
    """Check that training may write into output_dir; clear it when overwrite_output_dir allows."""
    out = Path(recipe.train.output_dir)
    if not out.exists() or not any(out.iterdir()):
        return out
    previous = read_run(out)
    if recipe.train.resume_from_checkpoint and previous is not None:
        return out
    if previous is None:
        raise UserError(
            f"train.output_dir {out} is not empty and holds no ftkit run; choose an empty or new directory"
        )
    if not recipe.train.overwrite_output_dir:
        raise UserError(
            f"train.output_dir {out} already holds a {previous.get('status', 'previous')} run; set "
            "train.overwrite_output_dir=true to replace it, train.resume_from_checkpoint=latest to continue "
            "it, or choose another output_dir"
        )
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return out


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
    moved = []
    for item in sorted(staging.iterdir()):
        destination = output_dir / item.name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(item, destination)
        moved.append(item.name)
    staging.rmdir()
    return moved
