"""What `ftkit train` does with its output_dir: start a new run, replace a run that stopped before its
first checkpoint, resume a run exactly, or refuse -- decided before anything loads or is written.

A finished model is never lost: a completed run is replaced only with `overwrite_output_dir`. A resume
continues exactly the run that was recorded: the recipe is compared with the one the run saved, and
any change to what is trained (data, model, adapter, optimization, seed) is refused; changes to how the
run is watched (logging, evaluation, checkpoint cadence) are allowed and logged. The data itself is
compared once it is read (`check_data_unchanged`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ftkit.config import Recipe
from ftkit.config.redact import redact
from ftkit.errors import UserError
from ftkit.rundir import (
    INITIAL_ADAPTER,
    RESOLVED_RECIPE_FILE,
    SCRATCH_BASE,
    RunDirState,
    clear_dir,
    inspect_run_dir,
    is_complete_checkpoint,
    read_run,
)

log = logging.getLogger(__name__)

RUN_CONTROL_KEYS = ("train.output_dir", "train.overwrite_output_dir", "train.resume_from_checkpoint")
"""Keys that say where and how a run starts; they differ on every resume by nature."""
RESUME_SAFE_KEYS = (
    *RUN_CONTROL_KEYS,
    "train.logging_steps",
    "train.eval_strategy",
    "train.eval_steps",
    "train.per_device_eval_batch_size",
    "train.save_strategy",
    "train.save_steps",
    "train.save_total_limit",
    "train.load_best_model_at_end",
    "train.metric_for_best_model",
    "train.greater_is_better",
    "train.early_stopping_patience",
    "train.early_stopping_threshold",
    "train.dataloader_num_workers",
    "train.gradient_checkpointing",
    "data.eval",
    "data.dataset_dir",
    "data.num_proc",
    "data.cache",
    "data.cache_dir",
    "eval",
    "logging",
    "export",
    "distributed.master_port",
    "distributed.backend",
    "distributed.find_unused_parameters",
)
"""Recipe keys (and sections) a resume may change: they decide how a run is watched and saved, not what
it trains. Recomputing activations (gradient_checkpointing) gives the same gradients. The data files
are compared by content, so a moved dataset_dir is fine."""
STOPPED = ("killed", "failed", "interrupted")


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key} ({_short(self.old)} -> {_short(self.new)})"


def _short(value: Any) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class StartPlan:
    """What training does with the output_dir, decided by `plan_start`."""

    action: Literal["new", "replace", "overwrite", "resume"]
    state: RunDirState
    checkpoint: Path | None = None
    scratch_base: Path | None = None
    """A from-scratch LoRA run's saved base, loaded instead of initializing random weights again."""
    changes: list[Change] = field(default_factory=list)
    """Harmless recipe changes a resume carries (logged)."""
    recorded_data: dict[str, Any] | None = None
    """The data inputs the resumed run recorded, compared once the data is read."""

    def describe(self) -> str:
        if self.action == "resume":
            return f"resume from {self.checkpoint}"
        if self.action == "replace":
            return f"replace the {self.state.status} run (it stopped before its first checkpoint)"
        if self.action == "overwrite":
            return "replace what it holds (overwrite_output_dir)"
        return "start a new run"


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): values}


def _comparable(recorded: dict[str, Any], current: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """The recorded recipe, flattened, as this version of ftkit would have written it: without other
    stages' sections (older versions wrote every one), and with the settings added since at their
    defaults when the current recipe keeps those defaults."""
    others = recipe.other_stage_sections()
    flat = {key: value for key, value in _flatten(recorded).items() if key.split(".")[0] not in others}
    sections = {key.rsplit(".", 1)[0] for key in flat if "." in key}
    for key, value in current.items():
        parent = key.rsplit(".", 1)[0]
        if key not in flat and parent in sections and value == _schema_default(recipe, key):
            flat[key] = value  # a setting of a section the recorded run had, added since
    return flat


def _schema_default(recipe: Recipe, key: str) -> Any:
    """The default of the recipe setting at dotted `key` as JSON, or a marker that matches nothing."""
    from pydantic import BaseModel

    node: Any = recipe
    *path, last = key.split(".")
    for part in path:
        node = getattr(node, part, None)
        if not isinstance(node, BaseModel):
            return _NO_DEFAULT
    field = type(node).model_fields.get(last)
    if field is None or field.is_required():
        return _NO_DEFAULT
    default = field.get_default(call_default_factory=True)
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else default


_NO_DEFAULT = object()


def _safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in RESUME_SAFE_KEYS)


def recipe_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Keys whose values differ between two resolved recipes (sections compared key by key)."""
    old, new = _flatten(recorded), _flatten(current)
    return [
        Change(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _recorded_recipe(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESOLVED_RECIPE_FILE
    try:
        recorded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        recorded = None
    if not isinstance(recorded, dict):
        raise UserError(
            f"train.resume_from_checkpoint: {run_dir} has no readable {RESOLVED_RECIPE_FILE}, so ftkit cannot "
            "verify that this recipe continues that run; start a new run instead"
        )
    return recorded


def _further_training(recipe: Recipe, out: Path) -> str:
    """How to train a finished run further: a new run that starts from its weights."""
    if recipe.keeps_base:  # the adapter belongs to the base the run saved (random, or LoftQ's)
        start = (
            f"model.name_or_path={out / SCRATCH_BASE}, model.from_scratch=false, adapter.init=default and "
            f"adapter.init_from={out}"
        )
    elif recipe.adapter.type == "lora":
        start = f"adapter.init_from={out}"
    else:
        start = f"model.name_or_path={out}"
    return f"start a new run from it: another train.output_dir with {start}"


def _resume(recipe: Recipe, state: RunDirState) -> StartPlan:
    out = state.path
    wanted = recipe.train.resume_from_checkpoint
    if wanted == "latest":
        if state.run is None:
            if state.exists and not state.empty:
                raise UserError(
                    f"train.resume_from_checkpoint=latest: {out} is not empty and holds no ftkit run to resume"
                )
            log.info("resume_from_checkpoint=latest: %s holds no run yet; starting a new run", out)
            return StartPlan("new", state)
        if state.status == "completed":
            raise UserError(
                f"train.resume_from_checkpoint=latest: {out} holds a completed run, so there is nothing to "
                "resume, and resuming would replace its finished "
                f"{'adapter' if recipe.adapter.type == 'lora' else 'model'}. To train it further, "
                f"{_further_training(recipe, out)}; to replace it, set train.overwrite_output_dir=true; "
                "or choose another train.output_dir."
            )
        if state.latest is None:
            raise UserError(
                f"train.resume_from_checkpoint=latest: the {state.status} run in {out} saved no complete "
                "checkpoint, so there is nothing to resume. Run again without resume_from_checkpoint to "
                f"start over (the {state.status} run is then replaced), or choose another train.output_dir."
            )
        checkpoint, owner = state.latest, out
    else:
        checkpoint = Path(wanted)
        if not checkpoint.is_dir():
            raise UserError(f"train.resume_from_checkpoint {wanted}: no such checkpoint folder")
        if not is_complete_checkpoint(checkpoint):
            raise UserError(
                f"train.resume_from_checkpoint {wanted} is not a complete checkpoint (no readable "
                "trainer_state.json for its step): it was cut short; give an earlier one or latest"
            )
        owner = checkpoint.resolve().parent
        if owner != out.resolve():
            if state.exists and not state.empty:
                raise UserError(
                    f"train.resume_from_checkpoint {wanted} belongs to the run in {owner}; continuing it "
                    f"into train.output_dir {out} needs that folder empty or new"
                )
        elif state.status == "completed":
            raise UserError(
                f"train.resume_from_checkpoint {wanted}: {out} holds a completed run, and resuming would "
                f"replace its finished weights. To train further, {_further_training(recipe, out)}."
            )
    if state.status == "running":
        _refuse_running(state)
    plan = StartPlan("resume", state, checkpoint)
    current = _flatten(redact(recipe.resolved_values()))
    changes = recipe_changes(_comparable(_recorded_recipe(owner), current, recipe), current)
    refused = [change for change in changes if not _safe(change.key)]
    if refused:
        raise UserError(
            f"train.resume_from_checkpoint: this recipe differs from the run recorded in {owner} in what is "
            f"trained: {', '.join(map(str, refused))}. A resume continues exactly the recorded run: restore "
            "these values, or start a new run (another train.output_dir, or train.overwrite_output_dir=true)."
        )
    plan.changes = [change for change in changes if change.key not in RUN_CONTROL_KEYS]
    run = read_run(owner) or {}
    plan.recorded_data = (run.get("data") or {}).get("inputs")
    if recipe.keeps_base:
        base = owner / SCRATCH_BASE
        if not (base / "config.json").is_file() or not any(base.glob("*.safetensors")):
            raise UserError(
                f"train.resume_from_checkpoint: the run in {owner} trained its adapter on the base it saved "
                f"(random, or quantized by LoftQ) in {base}, which is missing or incomplete; without it the "
                "adapter cannot be continued"
            )
        if getattr(recipe.adapter, "init", None) == "loftq" and not (owner / INITIAL_ADAPTER).is_dir():
            raise UserError(
                f"train.resume_from_checkpoint: the LoftQ run in {owner} lacks {INITIAL_ADAPTER}/ (its adapter's "
                "start, the reference of preference stages); start a new run instead"
            )
        plan.scratch_base = base
    return plan


def _refuse_running(state: RunDirState) -> None:
    run = state.run or {}
    raise UserError(
        f"train.output_dir {state.path} holds a run that is still training (process {run.get('pid')} on "
        f"{run.get('host', 'this machine')}); wait for it or stop it, or choose another train.output_dir"
    )


def plan_start(recipe: Recipe, state: RunDirState | None = None) -> StartPlan:
    """Decide what training does with recipe.train.output_dir; refusals are user errors."""
    state = state or inspect_run_dir(recipe.train.output_dir)
    if recipe.train.resume_from_checkpoint:
        return _resume(recipe, state)
    out = state.path
    if not state.exists or state.empty:
        return StartPlan("new", state)
    if state.run is None:
        raise UserError(
            f"train.output_dir {out} is not empty and holds no ftkit run; choose an empty or new directory"
        )
    if state.status == "running":
        _refuse_running(state)
    if recipe.train.overwrite_output_dir:
        return StartPlan("overwrite", state)
    if state.status == "completed" or state.final_weights:
        raise UserError(
            f"train.output_dir {out} already holds a {state.status} run with its final weights; set "
            "train.overwrite_output_dir=true to replace it, or choose another output_dir. To train it "
            f"further, {_further_training(recipe, out)}."
        )
    if state.checkpoints:
        raise UserError(
            f"train.output_dir {out} holds a {state.status} run with checkpoints up to {state.latest.name if state.latest else ''}; "
            "continue it with train.resume_from_checkpoint=latest, replace it with "
            "train.overwrite_output_dir=true, or choose another output_dir"
        )
    return StartPlan("replace", state)


def follow_plan(recipe: Recipe) -> StartPlan:
    """The plan of a process other than the first under a launcher: the checkpoint the first process
    resumes from, without judging the output_dir (the first process did, and may be writing into it)."""
    state = inspect_run_dir(recipe.train.output_dir)
    wanted = recipe.train.resume_from_checkpoint
    checkpoint = (state.latest if wanted == "latest" else Path(wanted)) if wanted else None
    if checkpoint is None:
        return StartPlan("new", state)
    plan = StartPlan("resume", state, checkpoint)
    if recipe.keeps_base:
        plan.scratch_base = checkpoint.resolve().parent / SCRATCH_BASE
    return plan


def prepare_output_dir(plan: StartPlan) -> None:
    """Carry out the plan's changes to the output_dir (main process only): clear a replaced run, and
    remove what a killed process left half-written."""
    state = plan.state
    if plan.action in ("replace", "overwrite"):
        run = state.run or {}
        why = f" ({run['error']})" if run.get("error") else ""
        if plan.action == "replace":
            log.info(
                "replacing the %s run in %s: it stopped before its first checkpoint%s",
                state.status,
                state.path,
                why,
            )
        else:
            log.info(
                "overwrite_output_dir: replacing the %s run in %s", state.status or "previous", state.path
            )
        clear_dir(state.path)
        return
    if plan.action == "resume":
        import shutil

        for leftover in state.incomplete:
            log.warning("removing %s: a checkpoint or save that a killed process left incomplete", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        if plan.changes:
            log.info("resuming with changed %s", ", ".join(map(str, plan.changes)))


def check_data_unchanged(plan: StartPlan, inputs: dict[str, Any]) -> None:
    """A resume must read the data the recorded run read: same files, registry entries, tokenizer, template."""
    recorded = plan.recorded_data
    if plan.action != "resume" or recorded is None:
        return
    changed = [
        f"{part} {name}" if name else part
        for part, values in recorded.items()
        for name, value in (values.items() if isinstance(values, dict) else [("", values)])
        if (inputs.get(part, {}).get(name) if name else inputs.get(part)) != value
    ]
    if changed:
        raise UserError(
            "train.resume_from_checkpoint: the training data changed since the recorded run "
            f"({', '.join(changed)} differ); a resume continues exactly that run. Restore the data, or "
            "start a new run."
        )
