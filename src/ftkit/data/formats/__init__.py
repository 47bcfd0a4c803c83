"""The dataset format table: one Format per registry `formatting` (formats/base.py), declared in its own
module and listed in BUILTIN_FORMATS. Adding a format is its module plus one entry there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    "EXAMPLE_FIELDS",
    "FORMATS",
    "BadRow",
    "Example",
    "Format",
    "Row",
    "Skip",
    "check_entry",
    "example",
    "register_format",
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


def check_entry(spec: DatasetSpec, stage: Any = None) -> None:
    """Registry fields set on the entry that its format would ignore are an error, not silently dropped;
    with `stage` (a StageSpec), the entry must also hold the kind of data that stage trains on."""
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
    if stage is not None and stage.preference and not spec.ranking:
        raise UserError(
            f"dataset {spec.name!r} has no chosen/rejected answers; stage {stage.name} needs ranking: true data"
        )
    if stage is not None and not stage.preference and spec.ranking:
        raise UserError(
            f"dataset {spec.name!r} is preference data (ranking: true); stage {stage.name} cannot train on it"
        )
    if spec.file_name and "split" in spec.model_fields_set and spec.split != "train":
        raise UserError(
            f"dataset {spec.name!r}: split applies to hub datasets; a local file_name is one split"
        )
