"""Around the trainer: readable progress lines, the loss plot, early stopping, and the trackers (wandb,
tensorboard), which receive the run metadata as well as the metrics."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback, TrainerCallback

from ftkit.atomic import apply_umask
from ftkit.config import Recipe, dump_recipe
from ftkit.config.redact import redact
from ftkit.console import interactive
from ftkit.stages import stage_for

log = logging.getLogger("ftkit.train")
LOSS_PLOT = "loss.png"


def _series(log_history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(e["step"], e[key]) for e in log_history if key in e and "step" in e]


def plot_losses(log_history: list[dict[str, Any]], path: str | Path, title: str = "") -> bool:
    """Train and eval loss (and the mean reward, for GRPO) against the optimizer step, as a PNG."""
    train, evaluation, reward = (_series(log_history, k) for k in ("loss", "eval_loss", "reward"))
    if not (train or evaluation or reward):
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", color="tab:blue")
    if evaluation:
        axes.plot(*zip(*evaluation, strict=True), label="eval loss", color="tab:orange", marker="o")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if reward:
        right = axes.twinx()
        right.plot(*zip(*reward, strict=True), label="reward", color="tab:green")
        right.set_ylabel("mean reward")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    figure.savefig(tmp, format="png")
    plt.close(figure)
    os.replace(tmp, path)
    return True


def shown(key: str, patterns: tuple[str, ...]) -> bool:
    """Whether a logged metric is one the console shows: it, or its eval_ version, matches a pattern."""
    name = key.removeprefix("eval_")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def format_logs(
    step: int, max_steps: int, logs: dict[str, Any], patterns: tuple[str, ...] | None = None
) -> str:
    """`step 10/180  loss 5.1  learning_rate 0.003 ... epoch 0.67`: the numbers the trainer logged (those
    matching `patterns`, when given); empty when none of them is shown."""
    parts = []
    for key, value in logs.items():
        if key in ("epoch", "total_flos") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if patterns is None or shown(key, patterns):
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    if not parts:
        return ""
    epoch = [f"epoch {logs['epoch']:.2f}"] if "epoch" in logs else []
    return "  ".join([f"step {step}/{max_steps}", *parts, *epoch])


class ProgressLog(ProgressCallback):
    """The trainer's progress bar (on a terminal), and one readable line per log with the metrics the
    stage shows on the console instead of a raw dict of all of them."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = patterns

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = format_logs(state.global_step, state.max_steps, logs, self.patterns)
        if not line:
            return
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            log.info(line)

    def on_train_begin(self, args, state, control, **kwargs):
        if not args.disable_tqdm and interactive():
            super().on_train_begin(args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_step_end(args, state, control, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_train_end(args, state, control, **kwargs)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.training_bar is not None:  # the evaluation's bar only beside the training bar
            super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def start_trackers(recipe: Recipe, metadata: dict[str, Any]) -> None:
    """Open the wandb and MLflow runs with the recipe's project, name and tags, and the resolved recipe
    and the run metadata (transformers' callbacks then log the metrics into these runs). Main process
    only."""
    if "mlflow" in recipe.logging.report_to:
        start_mlflow(recipe, metadata)
    if "wandb" not in recipe.logging.report_to:
        return
    import wandb

    if wandb.run is not None:
        return
    config = {"recipe": redact(recipe.resolved_values()), "ftkit": redact(metadata)}
    wandb.init(
        project=recipe.logging.project or "ftkit",
        name=recipe.logging.run_name,
        tags=recipe.logging.tags or None,
        dir=recipe.train.output_dir,
        config=config,
    )


MLFLOW_VALUE_LIMIT = 6000
"""The longest parameter value an MLflow store takes."""


def start_mlflow(recipe: Recipe, metadata: dict[str, Any]) -> None:
    """An MLflow run in logging.mlflow_tracking_uri, experiment logging.project: the resolved recipe as
    parameters (recipe.<section>.<key>), the run metadata and logging.tags as tags, before step 0."""
    import mlflow

    if mlflow.active_run() is not None:
        return
    logging_ = recipe.logging
    mlflow.set_tracking_uri(logging_.mlflow_tracking_uri)
    mlflow.set_experiment(logging_.project or "ftkit")
    tags = {
        f"ftkit.{key}": _mlflow_text(value) for key, value in redact(metadata).items() if value is not None
    }
    tags |= {tag: "true" for tag in logging_.tags} | {"ftkit.stage": recipe.stage}
    mlflow.start_run(run_name=logging_.run_name, tags=tags)
    params = {
        f"recipe.{key}": _mlflow_text(value) for key, value in _flat(redact(recipe.resolved_values())).items()
    }
    mlflow.log_params(params)
    log.info("MLflow run %s in %s", mlflow.active_run().info.run_id, logging_.mlflow_tracking_uri)


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _mlflow_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= MLFLOW_VALUE_LIMIT else text[: MLFLOW_VALUE_LIMIT - 3] + "..."


def finish_trackers(failed: bool = False) -> None:
    """Close the wandb and MLflow runs that start_trackers opened (wandb writes the run's summary and
    config then; the MLflow run ends FINISHED or FAILED)."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED" if failed else "FINISHED")


class TrackerMetadata(TrainerCallback):
    """Write the run metadata and resolved recipe into tensorboard as text (wandb gets them as config)."""

    def __init__(self, trainer: Any, recipe: Recipe, metadata: dict[str, Any]) -> None:
        self.trainer = trainer
        self.recipe = recipe
        self.metadata = metadata

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from transformers.integrations import TensorBoardCallback

        for callback in self.trainer.callback_handler.callbacks:
            writer = (
                getattr(callback, "tb_writer", None) if isinstance(callback, TensorBoardCallback) else None
            )
            if writer is not None:
                lines = [f"    {key}: {value}" for key, value in _flatten(redact(self.metadata)).items()]
                writer.add_text("ftkit/run_metadata", "\n".join(lines), global_step=state.global_step)
                writer.add_text(
                    "ftkit/recipe", "\n".join("    " + line for line in dump_recipe(self.recipe).splitlines())
                )
                writer.flush()


class CheckpointPermissions(TrainerCallback):
    """Checkpoints get the file modes of the user's umask (safetensors writes its files 0600)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                apply_umask(checkpoint)


def add_run_callbacks(trainer: Any, recipe: Recipe, metadata: dict[str, Any]) -> None:
    """ftkit's progress lines instead of the default printers, early stopping, and tracker metadata."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressLog(stage_for(recipe).console))
    trainer.add_callback(CheckpointPermissions())
    train = recipe.train
    if train.early_stopping_patience:
        trainer.add_callback(
            EarlyStoppingCallback(train.early_stopping_patience, train.early_stopping_threshold)
        )
    if "tensorboard" in recipe.logging.report_to:
        trainer.add_callback(TrackerMetadata(trainer, recipe, metadata))
