"""text: one document per row (a text column, or one line per row of a .txt file), for pretraining."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftkit.data.formats.base import BadRow, Example, Format, Row, Skip, example

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec


def _column(spec: DatasetSpec) -> str:
    return spec.columns.text or "text"


def convert(row: Row, spec: DatasetSpec) -> Example:
    value = row.get(_column(spec))
    if value is None:
        raise BadRow(f"text column {_column(spec)!r} is missing or null")
    if not isinstance(value, str):
        raise BadRow(f"text column {_column(spec)!r} holds {type(value).__name__}, expected text")
    if not value.strip():
        raise Skip("empty text")
    return example(text=value)


TEXT = Format(
    "text",
    convert,
    lambda spec: [_column(spec)],
    columns=("text",),
    description="one document per row (a text column, or a line of a .txt file), for pretraining",
)
