"""The shapes of processed data a stage's trainer consumes: which columns, how an example is counted
(`ftkit data stats`, run.json) and how it is shown (`ftkit data preview`). A stage declares its shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftkit.data.tokenize import IGNORE_INDEX

GREEN, DIM, RESET = "\033[32m", "\033[2m", "\033[0m"
Example = dict[str, Any]


@dataclass(frozen=True)
class DataShape:
    name: str
    columns: tuple[str, ...]
    """The processed columns the trainer reads."""
    measure: Callable[[Any], tuple[list[int], int]] | None
    """A processed split's tokens per example and trained tokens in all; None when nothing is tokenized
    up front (prompts)."""
    record: Callable[[Example, Any], dict[str, Any]]
    """The example as a JSON record (`ftkit data preview --json`): decoded text and ids."""
    show: Callable[[Example, Any, bool], tuple[str, str]]
    """The example for the terminal: a note for its header and its body (color: ANSI trained/masked)."""


def spans(tokenizer: Any, input_ids: list[int], labels: list[int], color: bool) -> str:
    """The text with trained spans green and masked spans dim (or [[...]] around trained text)."""
    pieces, group, trained = [], [], None
    for token, label in zip(input_ids, labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            pieces.append((trained, tokenizer.decode(group)))
            group = []
        group.append(token)
        trained = is_trained
    if group:
        pieces.append((bool(trained), tokenizer.decode(group)))
    if color:
        return "".join(f"{GREEN if t else DIM}{text}{RESET}" for t, text in pieces)
    return "".join(f"[[{text}]]" if t else text for t, text in pieces)


def _tokens_measure(dataset: Any) -> tuple[list[int], int]:
    labels = dataset["labels"]
    return [len(row) for row in labels], sum(1 for row in labels for label in row if label != IGNORE_INDEX)


def _tokens_record(example: Example, tokenizer: Any) -> dict[str, Any]:
    return {
        "text": tokenizer.decode(example["input_ids"]),
        "input_ids": example["input_ids"],
        "labels": example["labels"],
    }


def _tokens_show(example: Example, tokenizer: Any, color: bool) -> tuple[str, str]:
    legend = "trained text in green" if color else "trained text in [[...]]"
    body = spans(tokenizer, example["input_ids"], example["labels"], color)
    return f", {len(example['input_ids'])} tokens; {legend}", body


TOKENS = DataShape("tokens", ("input_ids", "labels"), _tokens_measure, _tokens_record, _tokens_show)
"""Token ids with labels (-100 where not trained): pt and sft."""

PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def _pair_measure(dataset: Any) -> tuple[list[int], int]:
    prompts, chosen, rejected = (dataset[column] for column in PAIR_COLUMNS)
    lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(prompts, chosen, rejected, strict=True)]
    return lengths, sum(len(c) + len(r) for c, r in zip(chosen, rejected, strict=True))


def _pair_record(example: Example, tokenizer: Any) -> dict[str, Any]:
    decoded = {column.removesuffix("_ids"): tokenizer.decode(example[column]) for column in PAIR_COLUMNS}
    return {**decoded, **{column: example[column] for column in PAIR_COLUMNS}}


def _pair_show(example: Example, tokenizer: Any, color: bool) -> tuple[str, str]:
    record = _pair_record(example, tokenizer)
    return "", f"PROMPT: {record['prompt']}\nCHOSEN: {record['chosen']}\nREJECTED: {record['rejected']}"


PREFERENCE_PAIRS = DataShape("preference pairs", PAIR_COLUMNS, _pair_measure, _pair_record, _pair_show)
"""A shared prompt and two answers, as token ids: dpo, orpo, simpo, rm."""


FEEDBACK_COLUMNS = ("prompt_ids", "completion_ids", "label")


def _feedback_measure(dataset: Any) -> tuple[list[int], int]:
    prompts, completions = dataset["prompt_ids"], dataset["completion_ids"]
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
    return lengths, sum(len(c) for c in completions)


def _feedback_record(example: Example, tokenizer: Any) -> dict[str, Any]:
    return {
        "prompt": tokenizer.decode(example["prompt_ids"]),
        "completion": tokenizer.decode(example["completion_ids"]),
        "desirable": bool(example["label"]),
        "prompt_ids": example["prompt_ids"],
        "completion_ids": example["completion_ids"],
    }


def _feedback_show(example: Example, tokenizer: Any, color: bool) -> tuple[str, str]:
    record = _feedback_record(example, tokenizer)
    verdict = "desirable" if record["desirable"] else "undesirable"
    return f", {verdict}", f"PROMPT: {record['prompt']}\nANSWER ({verdict}): {record['completion']}"


FEEDBACK = DataShape(
    "labelled answers", FEEDBACK_COLUMNS, _feedback_measure, _feedback_record, _feedback_show
)
"""A prompt and one answer, as token ids, with whether the answer is desirable: kto."""


def _prompt_record(example: Example, tokenizer: Any) -> dict[str, Any]:
    return {"prompt": example["prompt"], "reference": example["reference"]}


def _prompt_show(example: Example, tokenizer: Any, color: bool) -> tuple[str, str]:
    return "", f"PROMPT: {example['prompt']}\nREFERENCE: {example['reference']}"


PROMPTS = DataShape("prompts", ("prompt", "reference"), None, _prompt_record, _prompt_show)
"""Rendered prompts and the reference answers rewards compare with: grpo (completions are sampled)."""
