"""The eval metric table (`ftkit eval`, `eval.metrics`). A metric and a GRPO reward of the same name score
an answer the same way (answer_scores.py; the metric is the mean of the reward over the eval examples).
Adding a metric is one `register_metric(Metric(...))`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftkit.answer_scores import (
    accuracy,
    exact_match,
    label_match_score,
    mean_score,
    numeric_accuracy,
    rouge,
)
from ftkit.tables import Table
from ftkit.task_reports import classification_report, code_report

# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    generated: Callable[..., dict[str, Any]] | None = None
    """From generated answers: `(answers, references, labels) -> {name: score}` (labels: the eval entries'
    label_map values, for classification). Scores are numbers; a report may add structured parts (a
    confusion matrix), saved in eval_results.json and printed below the table."""
    grouped: bool = False
    """Called with a fourth argument: each eval example's group (its entry's group_column value, or None)."""
    likelihood: Callable[[float], float] | None = None
    """From the mean negative log-likelihood of the eval answers (no generation)."""
    lower_is_better: bool = False
    lower_is_better_scores: tuple[str, ...] = ()
    """Scores of a report where smaller is better (classification's unmatched)."""

    def __post_init__(self) -> None:
        if (self.generated is None) == (self.likelihood is None):
            raise TypeError(f"metric {self.name!r} needs exactly one of generated or likelihood")


METRICS: Table[Metric] = Table("metric")


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the table; a name that is taken is a programming error."""
    return METRICS.register(metric)


def check_metric(name: str) -> str:
    """`name` if it is in the table; otherwise a ValueError with the closest name and the choices."""
    if name not in METRICS:
        raise ValueError(f"{name!r} is not a metric{METRICS.suggestion(name)}; metrics: {', '.join(METRICS)}")
    return name


BUILTIN_METRICS = (
    Metric(
        "loss",
        "mean negative log-likelihood of the answers' tokens",
        likelihood=lambda nll: nll,
        lower_is_better=True,
    ),
    Metric(
        "perplexity",
        "exp(loss)",
        likelihood=lambda nll: math.exp(min(nll, 50.0)),
        lower_is_better=True,
    ),
    Metric(
        "exact_match",
        "the answer equals the reference after SQuAD normalization (case, punctuation, articles, spaces)",
        generated=lambda answers, refs, labels: {"exact_match": exact_match(answers, refs)},
    ),
    Metric(
        "accuracy",
        "classification: the first label named in the answer (of the entries' label_map values, else the "
        "set of references) equals the reference",
        generated=lambda answers, refs, labels: {"accuracy": accuracy(answers, refs, labels or None)},
    ),
    Metric(
        "classification",
        "classification report: accuracy, macro_f1 and unmatched (answers naming no label), with per-label "
        "precision/recall/F1 and the confusion matrix in eval_results.json and below the table",
        generated=lambda answers, refs, labels: classification_report(answers, refs, labels),
        lower_is_better_scores=("unmatched",),
    ),
    Metric(
        "code",
        "code generation: generation_rate (answers holding code: a ```python block, or code-like text) and "
        "parse_rate (that code parses as Python), per group (e.g. difficulty) when the entry has a group_column",
        generated=lambda answers, refs, labels, groups: code_report(answers, groups),
        grouped=True,
    ),
    Metric(
        "label_match",
        "classification: the answer's first word is the reference label (the GRPO reward of that name)",
        generated=lambda answers, refs, labels: {
            "label_match": mean_score([label_match_score(a, r) for a, r in zip(answers, refs, strict=True)])
        },
    ),
    Metric(
        "numeric_match",
        "the answer's final number (`#### N`, `\\boxed{N}`, else the last number) equals the reference's",
        generated=lambda answers, refs, labels: {"numeric_match": numeric_accuracy(answers, refs)},
    ),
    Metric(
        "rouge",
        "ROUGE-1, ROUGE-2 and ROUGE-L F1 over lower-cased words (reported as rouge1, rouge2, rougeL)",
        generated=lambda answers, refs, labels: rouge(answers, refs),
    ),
)
for _builtin in BUILTIN_METRICS:
    register_metric(_builtin)
