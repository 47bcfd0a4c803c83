"""Format converters: one per registry `formatting`, each turning a raw row into the normalized example.

The normalized example is `{"system": str | None, "messages": [{"role", "content"}, ...]}`. A converter
raises BadRow with a reason when a row cannot be used; the pipeline adds the dataset, file and row.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftkit.data.registry import DatasetSpec
from ftkit.errors import UserError

Row = dict[str, Any]
Example = dict[str, Any]


class BadRow(ValueError):
    """A row that cannot become an example; the message says why."""


@dataclass(frozen=True)
class Format:
    name: str
    convert: Callable[[Row, DatasetSpec], Example]
    required_columns: Callable[[DatasetSpec], list[str]]
    """Columns that must exist in the dataset (checked once, before any row is converted)."""
    columns: tuple[str, ...] = ()
    """The `columns` keys this format reads; setting any other is an error, not silently ignored."""
    options: tuple[str, ...] = ()
    """The format-specific registry fields it reads (e.g. prompt_format)."""


FORMATS: dict[str, Format] = {}
SOURCE_FIELDS = (
    "file_name",
    "hf_hub_url",
    "ms_hub_url",
    "om_hub_url",
    "script_url",
    "subset",
    "folder",
    "split",
    "revision",
    "num_samples",
    "formatting",
    "where",
    "bidirectional",
    "system",
    "columns",
)


def register_format(fmt: Format) -> None:
    if fmt.name in FORMATS:
        raise ValueError(f"dataset format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt


def check_entry(spec: DatasetSpec) -> None:
    """Registry fields set on the entry that its format would ignore are an error, not silently dropped."""
    fmt = FORMATS[spec.formatting]
    unused = [name for name in spec.model_fields_set if name not in (*SOURCE_FIELDS, *fmt.options, "name")]
    unused += [f"columns.{name}" for name in spec.columns.model_fields_set if name not in fmt.columns]
    if unused:
        raise UserError(
            f"dataset {spec.name!r}: {', '.join(sorted(unused))} does not apply to formatting {spec.formatting}; "
            "remove it or change the formatting"
        )
    if spec.file_name and "split" in spec.model_fields_set and spec.split != "train":
        raise UserError(
            f"dataset {spec.name!r}: split applies to hub datasets; a local file_name is one split"
        )


def _text(row: Row, column: str, what: str, allow_empty: bool = False) -> str:
    value = row.get(column)
    if value is None:
        if allow_empty:
            return ""
        raise BadRow(f"{what} column {column!r} is missing or null")
    if isinstance(value, int | float | bool):
        value = str(value)  # numeric answers (math, labels) are text to the model
    if not isinstance(value, str):
        raise BadRow(f"{what} column {column!r} holds {type(value).__name__}, expected text")
    if not allow_empty and not value.strip():
        raise BadRow(f"{what} column {column!r} is empty")
    return value


def _system(row: Row, spec: DatasetSpec) -> str | None:
    if spec.columns.system:
        value = _text(row, spec.columns.system, "system", allow_empty=True)
        if value:
            return value
    return spec.system


# alpaca: instruction (+ input) -> output, with optional history pairs.
def _alpaca_columns(spec: DatasetSpec) -> list[str]:
    cols = spec.columns
    # The default input column may be absent; a column named explicitly must exist.
    return [
        c
        for c in (
            cols.prompt or "instruction",
            cols.query,
            cols.response or "output",
            cols.history,
            cols.system,
        )
        if c
    ]


def _alpaca(row: Row, spec: DatasetSpec) -> Example:
    cols = spec.columns
    prompt = _text(row, cols.prompt or "instruction", "prompt")
    query_column = cols.query or "input"
    query = _text(row, query_column, "query", allow_empty=True) if query_column in row else ""
    response = _text(row, cols.response or "output", "response")
    messages = []
    if cols.history:
        history = row.get(cols.history) or []
        if not isinstance(history, list):
            raise BadRow(f"history column {cols.history!r} must be a list of [prompt, response] pairs")
        for index, pair in enumerate(history):
            if not (
                isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
            ):
                raise BadRow(f"history[{index}] must be a [prompt, response] pair of texts")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = f"{prompt}\n{query}" if query else prompt
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
    return {"system": _system(row, spec), "messages": messages}


register_format(
    Format("alpaca", _alpaca, _alpaca_columns, columns=("prompt", "query", "response", "history", "system"))
)


# pairs: prompt and response built from columns with format strings.
def _placeholders(text: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(text) if field]


def _pairs_columns(spec: DatasetSpec) -> list[str]:
    columns = _placeholders(spec.prompt_format or "") + _placeholders(spec.response_format or "")
    return columns + ([spec.columns.system] if spec.columns.system else [])


def _fill(template: str, row: Row, what: str) -> str:
    values = {}
    for column in _placeholders(template):
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadRow(f"{what}: column {column!r} is missing or empty")
        values[column] = value
    return template.format(**values)


def _pairs(row: Row, spec: DatasetSpec) -> Example:
    assert spec.prompt_format and spec.response_format
    prompt = _fill(spec.prompt_format, row, "prompt_format")
    response = _fill(spec.response_format, row, "response_format")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return {"system": _system(row, spec), "messages": messages}


register_format(
    Format("pairs", _pairs, _pairs_columns, columns=("system",), options=("prompt_format", "response_format"))
)
