"""alpaca: instruction (+ input) -> output, with optional history; chosen/rejected with `ranking`.

An alpaca entry whose rows have no response column is read as text (LLaMA-Factory's way of declaring a
pretraining corpus: `"columns": {"prompt": "text"}`); supervised stages then report rows without answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftkit.data.formats.base import BadRow, Example, Format, Row, example, row_system, text_value

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec


def _required(spec: DatasetSpec) -> list[str]:
    cols = spec.columns
    needed = [cols.prompt or "instruction", cols.query, cols.response, cols.history, cols.system]
    if spec.ranking:
        needed += [cols.chosen or "chosen", cols.rejected or "rejected"]
    return [c for c in needed if c]


def _history(row: Row, column: str) -> list[dict[str, str]]:
    history = row.get(column) or []
    if not isinstance(history, list):
        raise BadRow(f"history column {column!r} must be a list of [prompt, response] pairs")
    messages = []
    for index, pair in enumerate(history):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise BadRow(f"history[{index}] must be a [prompt, response] pair of texts")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def convert(row: Row, spec: DatasetSpec) -> Example:
    cols = spec.columns
    prompt = text_value(row, cols.prompt or "instruction", "prompt")
    query_column = cols.query or "input"
    query = text_value(row, query_column, "query", allow_empty=True) if query_column in row else ""
    user = f"{prompt}\n{query}" if query else prompt
    messages = _history(row, cols.history) if cols.history else []
    messages.append({"role": "user", "content": user})
    system = row_system(row, spec)
    if spec.ranking:
        chosen = text_value(row, cols.chosen or "chosen", "chosen")
        rejected = text_value(row, cols.rejected or "rejected", "rejected")
        return example(system, messages, chosen=chosen, rejected=rejected)
    response_column = cols.response or "output"
    if response_column not in row and not cols.response:
        return example(system, messages, text=user)
    messages.append({"role": "assistant", "content": text_value(row, response_column, "response")})
    return example(system, messages)


ALPACA = Format(
    "alpaca",
    convert,
    _required,
    columns=("prompt", "query", "response", "history", "system", "chosen", "rejected", "kto_tag"),
    ranking=True,
    description="instruction (+ input) -> output, with history; chosen/rejected with ranking",
)
