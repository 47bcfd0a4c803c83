"""Examples built from columns with format strings.

pairs: `prompt_format` and `response_format` (e.g. "Paraphrase this: {sentence1}" -> "{sentence2}").
classification: `prompt_format` and a `label_map` from the label column (columns.response, default
label) to the answer text, for generative classification (IMDB, GLUE, financial sentiment).
"""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING, Any

from ftkit.data.formats.base import BadRow, Example, Format, Row, example, row_system

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def placeholders(text: str) -> list[str]:
    """The columns a format string reads: `{question}`, `{choices[0]}` and `{choices!c}` read question and
    choices."""
    fields = [field for _, field, _, _ in string.Formatter().parse(text) if field]
    return list(dict.fromkeys(re.split(r"[.\[]", field, maxsplit=1)[0] for field in fields))


class _RowFormatter(string.Formatter):
    """str.format, plus the conversion !c: a list column as lettered choices, one per line ("A. ...")."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion != "c":
            return super().convert_field(value, conversion)
        if not isinstance(value, list) or not value or len(value) > len(LETTERS):
            raise BadRow(f"!c lists choices from a list column of 1 to {len(LETTERS)} items, not {value!r}")
        return "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, value, strict=False))


def fill(template: str, row: Row, what: str) -> str:
    values = {}
    for column in placeholders(template):
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadRow(f"{what}: column {column!r} is missing or empty")
        values[column] = value
    try:
        return _RowFormatter().format(template, **values)
    except (IndexError, KeyError, TypeError) as exc:
        raise BadRow(f"{what}: {type(exc).__name__} {exc} while filling {template!r}") from None


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
    if spec.label_bins:
        label = _binned(label, spec.label_bins)
    key = str(int(label)) if isinstance(label, float) and label.is_integer() else str(label)
    if key not in spec.label_map:
        known = ", ".join(spec.label_map)
        raise BadRow(f"label {label!r} is not in label_map (its keys: {known})")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": spec.label_map[key]}]
    return example(row_system(row, spec), messages)


def _binned(value: object, bins: dict[str, float | None]) -> str:
    """The label of a numeric value: the first whose upper bound is above it (a null bound takes the rest)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRow(f"label_bins needs a number in the label column, not {value!r}") from None
    for label, bound in bins.items():
        if bound is None or number < bound:
            return label
    raise BadRow(f"{number} is above every bound of label_bins (give the last label a null bound)")


def _check_classification(spec: DatasetSpec) -> None:
    _needs(spec, "prompt_format", "label_map")
    if spec.label_bins and (
        missing := [label for label in spec.label_bins if label not in (spec.label_map or {})]
    ):
        raise ValueError(f"label_bins names {', '.join(missing)}, which label_map does not map to an answer")


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
    options=("prompt_format", "label_map", "label_bins"),
    check=_check_classification,
    description="a prompt_format and a label_map from the label column to the answer (generative classification)",
)
