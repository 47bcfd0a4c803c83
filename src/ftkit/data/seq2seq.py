"""Examples for encoder-decoder models (T5, BART, Switch Transformers): the prompt is the encoder's input,
the last answer the decoder's target.

The prompt is the template's generation prompt when model.template is set; without one it is the text
of the turns before the answer (the system prompt first), one per paragraph, as such models were trained
on plain text. Inputs and targets are each cut at data.max_length (counted as truncated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ftkit.data.processors import Batch, ProcessOptions, conversations
from ftkit.data.shapes import DataShape, Example
from ftkit.data.tokenize import IGNORE_INDEX
from ftkit.templates import TemplateError, token_variables

if TYPE_CHECKING:
    from ftkit.templates import ChatTemplate


def prompt_text(
    template: ChatTemplate | None,
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    system: str | None,
    variables: Mapping[str, str] | None = None,
) -> str:
    """The encoder's input for a conversation that ends before the answer."""
    if template is not None:
        values = {**token_variables(tokenizer), **(variables or {})}
        return template.render_text(list(messages), system, add_generation_prompt=True, variables=values)
    return "\n\n".join([*([system] if system else []), *(m["content"] for m in messages)])


def process_seq2seq(
    batch: Batch, tokenizer: Any, template: ChatTemplate | None, options: ProcessOptions
) -> Batch:
    """input_ids (the prompt, with the tokenizer's special tokens) and labels (the answer, ended as the
    tokenizer ends a sequence)."""
    limit = options.masks.max_length
    out: Batch = {"input_ids": [], "labels": [], "_truncated": [], "_problem": []}
    for item in conversations(batch, options.system):
        messages = item["messages"]
        ids: list[int] = []
        labels: list[int] = []
        problem = None
        if not messages or messages[-1]["role"] != "assistant":
            problem = "no assistant answer to train on (does the entry name its response column?)"
        else:
            variables = {**(options.variables or {}), **(item["variables"] or {})}
            try:
                prompt = prompt_text(template, tokenizer, messages[:-1], item["system"], variables)
            except TemplateError as exc:
                problem = str(exc)
            else:
                ids = tokenizer(prompt)["input_ids"]
                labels = tokenizer(text_target=messages[-1]["content"])["input_ids"]
                if tokenizer.eos_token_id is not None and labels[-1:] != [tokenizer.eos_token_id]:
                    labels.append(tokenizer.eos_token_id)  # the model learns where its answer ends
        out["_truncated"].append(len(ids) > limit or len(labels) > limit)
        out["input_ids"].append(ids[:limit])
        out["labels"].append(labels[:limit])
        out["_problem"].append(problem)
    return out


def _measure(dataset: Any) -> tuple[list[int], int]:
    inputs, labels = dataset["input_ids"], dataset["labels"]
    return [len(i) + len(t) for i, t in zip(inputs, labels, strict=True)], sum(
        1 for row in labels for label in row if label != IGNORE_INDEX
    )


def _record(example: Example, tokenizer: Any) -> dict[str, Any]:
    return {
        "input": tokenizer.decode(example["input_ids"]),
        "target": tokenizer.decode(example["labels"]),
        "input_ids": example["input_ids"],
        "labels": example["labels"],
    }


def _show(example: Example, tokenizer: Any, color: bool) -> tuple[str, str]:
    record = _record(example, tokenizer)
    note = f", {len(example['input_ids'])} input and {len(example['labels'])} target tokens"
    return note, f"INPUT: {record['input']}\nTARGET: {record['target']}"


SEQ2SEQ = DataShape("input and target tokens", ("input_ids", "labels"), _measure, _record, _show)
"""Encoder input ids and decoder target ids (every target token trained): sft on encoder-decoder models."""
