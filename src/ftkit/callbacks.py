"""Trainer callbacks and run artifacts: readable progress lines and the loss plot."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback

log = logging.getLogger("ftkit.train")
LOSS_PLOT = "loss.png"


def plot_losses(log_history: list[dict[str, Any]], path: str | Path) -> bool:
    """Train (and eval) loss against the optimizer step, as a PNG; False when nothing was logged."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evaluation = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    if not train and not evaluation:
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
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    figure.savefig(tmp, format="png")
    plt.close(figure)
    os.replace(tmp, path)
    return True


def format_logs(step: int, max_steps: int, logs: dict[str, Any]) -> str:
    """`step 10/180  loss 5.1  learning_rate 0.003 ... epoch 0.67`: the numbers the trainer logged."""
    shown = [f"step {step}/{max_steps}"]
    for key, value in logs.items():
        if key in ("epoch", "total_flos") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        shown.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    if "epoch" in logs:
        shown.append(f"epoch {logs['epoch']:.2f}")
    return "  ".join(shown)


class ProgressLog(ProgressCallback):
    """The trainer's progress bar (when enabled), with one readable line per log instead of a raw dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = format_logs(state.global_step, state.max_steps, logs)
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            log.info(line)

    def on_train_begin(self, args, state, control, **kwargs):
        if not args.disable_tqdm:
            super().on_train_begin(args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_step_end(args, state, control, **kwargs)


def use_progress_log(trainer: Any) -> None:
    """Swap the trainer's default printers for ProgressLog."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressLog())
