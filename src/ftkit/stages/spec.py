"""A training stage declared in one place: its recipe section and rules, its data (processor and shape),
and its trainer. `ftkit check`, the recipe's `stage` choices, the data pipeline, `ftkit data
preview/stats` and `ftkit train` all read the declaration (stages/__init__.py holds the table).

Declaring a stage imports nothing heavy: trainers import TRL inside their functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ftkit.data.formats import DATA_KINDS
from ftkit.data.shapes import DataShape
from ftkit.models.heads import CAUSAL_LM, Head

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime

Batch = dict[str, list]


@dataclass
class TrainerInputs:
    """What a stage's trainer is built from."""

    recipe: Recipe
    args: Any
    model: Any
    tokenizer: Any
    template: Any
    train: Any
    eval: Any | None
    stream: Any = None
    """With data.streaming: the live counts of the training stream (data/stream.py StreamCounts)."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    description: str
    """One line for `ftkit check` and the docs."""
    process: Callable[..., Batch]
    """Normalized examples to the trainer's columns: `process(batch, tokenizer, template, options)`,
    batched, with `_problem` and `_truncated` per example (data/processors.py)."""
    shape: DataShape
    """The processed columns, how an example is counted and shown (data/shapes.py)."""
    arguments: Callable[[Recipe, Runtime], Any]
    """The TrainingArguments subclass (SFTConfig, DPOConfig, ...) for a recipe."""
    trainer: Callable[[TrainerInputs], Any]
    """The trainer (TRL's, or a subclass)."""
    head: Head = CAUSAL_LM
    """The model's head (models/heads.py): the language-model head, or a reward model's score head."""
    needs_template: bool = True
    """Formats conversations with a chat template (model.template required)."""
    data: str = "answers"
    """The kind of examples it trains on (data/formats DATA_KINDS): answers, ranking (entries with ranking:
    true) or feedback (entries with columns.kto_tag). Entries of another kind are refused at check."""
    packing: bool = False
    """Accepts data.packing."""
    streaming: bool = False
    """Accepts data.streaming: its processor and trainer work on examples read as they come."""
    regroup: Callable[..., Batch] | None = None
    """A batched map over the tokenized examples, called with `max_length=data.max_length` (pt:
    concatenate the documents and cut them into blocks)."""
    section: type[BaseModel] | None = None
    """The recipe section named after the stage (e.g. `dpo:`), with the stage's own settings."""
    check: Callable[[Recipe], None] | None = None
    """Rules across recipe sections, run when a recipe is validated; raises ConfigConflict."""
    evaluate: Callable[[Any, Any, int, int], dict[str, float]] | None = None
    """`ftkit eval`'s scores for the stage: `evaluate(model, processed_eval_split, pad_id, batch_size)`
    (stages/scores.py); None scores answers by the recipe's eval.metrics."""
    console: tuple[str, ...] = ("loss", "grad_norm", "learning_rate")
    """The logged metrics shown on the console (patterns such as `rewards/*/mean`; their eval_ versions
    too). Everything the trainer logs still goes to trainer_state.json and the trackers."""
    encoder_decoder: StageSpec | None = None
    """The stage's version for encoder-decoder models (sft: stages/seq2seq.py), used when the model's config
    says is_encoder_decoder (stages.stage_for); None: the stage trains decoder-only models."""
    signal: tuple[str, bool] = ("loss", False)
    """The metric that shows the method working, and whether higher is better: the end-of-run summary
    reports how it moved, and the examples' tests assert it improves."""

    def __post_init__(self) -> None:
        problems = []
        if not self.name.isidentifier():
            problems.append(f"name {self.name!r} must be a lowercase identifier (it is a recipe key)")
        if not self.description:
            problems.append("description is empty")
        for field in ("process", "arguments", "trainer"):
            if not callable(getattr(self, field)):
                problems.append(f"{field} must be a function, got {getattr(self, field)!r}")
        for field in ("regroup", "check", "evaluate"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                problems.append(f"{field} must be a function or None, got {value!r}")
        if self.data not in DATA_KINDS:
            problems.append(f"data must be one of {', '.join(DATA_KINDS)}, got {self.data!r}")
        if not isinstance(self.shape, DataShape):
            problems.append(f"shape must be a DataShape (data/shapes.py), got {self.shape!r}")
        if self.section is not None and not (
            isinstance(self.section, type) and issubclass(self.section, BaseModel)
        ):
            problems.append(f"section must be a pydantic model class, got {self.section!r}")
        if problems:
            raise TypeError(f"stage {self.name!r} is declared incompletely: " + "; ".join(problems))
