"""Examples built from columns with format strings.

pairs: `prompt_format` and `response_format` (e.g. "Paraphrase this: {sentence1}" -> "{sentence2}").
classification: `prompt_format` and a `label_map` from the label column (columns.response, default
label) to the answer text, for generative classification (IMDB, GLUE, financial sentiment).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from ftkit.data.formats.base import BadRow, Example, Format, Row, example, row_system

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec


def placeholders(text: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(text) if field]


def fill(template: str, row: Row, what: str) -> str:
    values = {}
    for column in placeholders(template):
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadRow(f"{what}: column {column!r} is missing or empty")
        values[column] = value
    return template.format(**values)


def _system_column(spec: DatasetSpec) -> list[str]:
    return [spec.columns.system] if spec.columns.system else []


def _pairs_required(spec: DatasetSpec) -> list[str]:
    return (
        placeholders(spec.prompt_format or "")
        + placeholders(spec.response_format or "")
        + _system_column(spec)
    )


def _pairs(row: Row, spec: DatasetSpec) -> Example:
    assert spec.prompt_format and spec.response_format
    prompt = fill(spec.prompt_format, row, "prompt_format")
    response = fill(spec.response_format, row, "response_format")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return example(row_system(row, spec), messages)


def _label_column(spec: DatasetSpec) -> str:
    return spec.columns.response or "label"


def _classification_required(spec: DatasetSpec) -> list[str]:
    return [*placeholders(spec.prompt_format or ""), _label_column(spec), *_system_column(spec)]


def _classification(row: Row, spec: DatasetSpec) -> Example:
    assert spec.prompt_format and spec.label_map
    prompt = fill(spec.prompt_format, row, "prompt_format")
    label = row.get(_label_column(spec))
    key = str(int(label)) if isinstance(label, float) and label.is_integer() else str(label)
    if key not in spec.label_map:
        known = ", ".join(spec.label_map)
        raise BadRow(f"label {label!r} is not in label_map (its keys: {known})")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": spec.label_map[key]}]
    return example(row_system(row, spec), messages)


def _needs(spec: DatasetSpec, *fields: str) -> None:
    missing = [field for field in fields if not getattr(spec, field)]
    if missing:
        raise ValueError(
            f"formatting {spec.formatting} needs {' and '.join(fields)} (missing {', '.join(missing)})"
        )


PAIRS = Format(
    "pairs",
    _pairs,
    _pairs_required,
    columns=("system",),
    options=("prompt_format", "response_format"),
    check=lambda spec: _needs(spec, "prompt_format", "response_format"),
    description="a prompt_format and a response_format over the row's columns",
)
CLASSIFICATION = Format(
    "classification",
    _classification,
    _classification_required,
    columns=("system", "response"),
    options=("prompt_format", "label_map"),
    check=lambda spec: _needs(spec, "prompt_format", "label_map"),
    description="a prompt_format and a label_map from the label column to the answer (generative classification)",
)
