"""The dataset format table: one Format per registry `formatting` (formats/base.py), declared in its own
module and listed in BUILTIN_FORMATS. Adding a format is its module plus one entry there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftkit.data.formats.alpaca import ALPACA
from ftkit.data.formats.base import (
    COMMON_COLUMNS,
    COMMON_FIELDS,
    EXAMPLE_FIELDS,
    BadRow,
    Example,
    Format,
    Row,
    Skip,
    example,
    row_feedback,
    row_group,
    row_system,
    row_variables,
    text_value,
)
from ftkit.data.formats.columns import CLASSIFICATION, PAIRS
from ftkit.data.formats.messages import OPENAI, SHAREGPT
from ftkit.data.formats.text import TEXT
from ftkit.errors import UserError
from ftkit.tables import Table

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec

__all__ = [
    "DATA_KINDS",
    "EXAMPLE_FIELDS",
    "FORMATS",
    "BadRow",
    "Example",
    "Format",
    "Row",
    "Skip",
    "check_entry",
    "data_kind",
    "example",
    "register_format",
    "row_feedback",
    "row_group",
    "row_system",
    "row_variables",
    "text_value",
]

BUILTIN_FORMATS = (ALPACA, SHAREGPT, OPENAI, TEXT, PAIRS, CLASSIFICATION)
FORMATS: Table[Format] = Table("dataset format")


def register_format(fmt: Format) -> Format:
    """Add a format to the table; a name that is taken is a programming error."""
    return FORMATS.register(fmt)


for _builtin in BUILTIN_FORMATS:
    register_format(_builtin)


DATA_KINDS = {
    "answers": "conversations ending with the answer to learn, or documents",
    "ranking": "a chosen and a rejected answer per prompt (entries with ranking: true)",
    "feedback": "single answers labelled desirable or not (entries with columns.kto_tag)",
}
"""What an entry's examples hold; a stage declares which kind it trains on (StageSpec.data)."""


def data_kind(spec: DatasetSpec) -> str:
    """The kind of examples the entry yields (a key of DATA_KINDS)."""
    if spec.ranking:
        return "ranking"
    return "feedback" if spec.columns.kto_tag else "answers"


def check_entry(spec: DatasetSpec) -> None:
    """Registry fields set on the entry that its format would ignore are an error, not silently dropped
    (the stage table checks the kind of data a stage trains on: stages.check_dataset)."""
    fmt = FORMATS[spec.formatting]
    unused = [name for name in spec.model_fields_set if name not in (*COMMON_FIELDS, *fmt.options, "tags")]
    if "tags" in spec.model_fields_set and not fmt.uses_tags:
        unused.append("tags")
    readable = (*fmt.columns, *COMMON_COLUMNS)
    unused += [f"columns.{name}" for name in spec.columns.model_fields_set if name not in readable]
    if unused:
        raise UserError(
            f"dataset {spec.name!r}: {', '.join(sorted(set(unused)))} does not apply to formatting "
            f"{spec.formatting}; remove it or change the formatting"
        )
    if spec.file_name and "split" in spec.model_fields_set and spec.split != "train":
        raise UserError(
            f"dataset {spec.name!r}: split applies to hub datasets; a local file_name is one split"
        )
