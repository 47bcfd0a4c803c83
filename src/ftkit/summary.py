"""The end of a run in a few lines: how the stage's signal moved, the last evaluation, tokens, speed,
time, where the results are, and what to run next. Also recorded in run.json and the model card."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftkit.callbacks import LOSS_PLOT, shown
from ftkit.rundir import FINAL_WEIGHTS, RUN_FILE

MODEL_CARD = "README.md"
_EVAL_RUNTIME = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


@dataclass
class RunSummary:
    stage: str
    signal: str
    """The metric that shows the method working (the stage's declaration)."""
    higher_is_better: bool
    steps: int
    first: float | None = None
    last: float | None = None
    best: float | None = None
    best_step: int | None = None
    evaluation: dict[str, float] = field(default_factory=dict)
    """The last evaluation's metrics."""
    tokens: int | None = None
    """Tokens the trainer processed (TRL's num_tokens), when it counts them."""
    train_seconds: float | None = None
    wall_seconds: float | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def improved(self) -> bool | None:
        if self.first is None or self.last is None:
            return None
        return self.last > self.first if self.higher_is_better else self.last < self.first

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self, next_commands: list[str]) -> list[str]:
        """The summary block for the console."""
        rows = [
            ("stage", f"{self.stage}, {self.steps} steps" + _durations(self.train_seconds, self.wall_seconds))
        ]
        if self.first is not None and self.last is not None:
            best = (
                f" (best {self.best:.4g} at step {self.best_step})"
                if self.best not in (None, self.last)
                else ""
            )
            rows.append((self.signal, f"{self.first:.4g} -> {self.last:.4g}{best}"))
        if self.evaluation:
            rows.append(("evaluation", "  ".join(f"{k} {v:.4g}" for k, v in self.evaluation.items())))
        if self.tokens:
            speed = f", {self.tokens / self.train_seconds:,.0f} tokens/s" if self.train_seconds else ""
            rows.append(("tokens", f"{self.tokens:,} processed{speed}"))
        rows += [(what, path) for what, path in self.files.items()]
        rows += [("next" if index == 0 else "", command) for index, command in enumerate(next_commands)]
        width = max(len(key) for key, _ in rows)
        rule = "-" * 20
        return [
            f"{rule} run summary {rule}",
            *(f"  {key:<{width}}  {value}" for key, value in rows),
            rule * 2 + "-" * 13,
        ]


def _durations(train: float | None, wall: float | None) -> str:
    parts = [f"{_clock(wall)} in all" if wall else "", f"{_clock(train)} training" if train else ""]
    parts = [part for part in parts if part]
    return f", {', '.join(parts)}" if parts else ""


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def summarize_run(
    log_history: list[dict[str, Any]],
    stage: str,
    signal: tuple[str, bool],
    console: tuple[str, ...],
    output_dir: str | Path,
    wall_seconds: float | None = None,
) -> RunSummary:
    """The summary of a finished run from its log history (trainer_state.json) and output folder."""
    name, higher = signal
    series = [(entry["step"], entry[name]) for entry in log_history if name in entry and "step" in entry]
    steps = max((entry.get("step", 0) for entry in log_history), default=0)
    summary = RunSummary(stage, name, higher, steps, wall_seconds=wall_seconds)
    if series:
        pick = max if higher else min
        best_step, best = pick(series, key=lambda item: item[1])
        summary.first, summary.last = series[0][1], series[-1][1]
        summary.best, summary.best_step = best, best_step
    evaluations = [entry for entry in log_history if any(key.startswith("eval_") for key in entry)]
    if evaluations:
        summary.evaluation = {
            key: value
            for key, value in evaluations[-1].items()
            if key.startswith("eval_")
            and key not in _EVAL_RUNTIME
            and (key == "eval_loss" or shown(key, console))
        }
    tokens = [entry["num_tokens"] for entry in log_history if "num_tokens" in entry]
    summary.tokens = int(tokens[-1]) if tokens else None
    runtimes = [entry["train_runtime"] for entry in log_history if "train_runtime" in entry]
    summary.train_seconds = runtimes[-1] if runtimes else None
    out = Path(output_dir)
    weights = next((out / name for name in FINAL_WEIGHTS if (out / name).is_file()), None)
    if weights is not None:
        summary.files["adapter" if weights.name.startswith("adapter") else "model"] = str(weights)
    for what, filename in (("loss plot", LOSS_PLOT), ("run record", RUN_FILE), ("model card", MODEL_CARD)):
        summary.files[what] = str(out / filename)
    return summary
