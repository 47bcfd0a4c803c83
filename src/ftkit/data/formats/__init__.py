"""Format converters: one per registry `formatting`, each turning a raw row into the normalized example.

The normalized example has the same fields for every format, so datasets of any format can be mixed:
`system` (str | None), `messages` ([{role, content}], ending with the answer for supervised data),
`chosen` / `rejected` (preference answers), `text` (a document, for pretraining) and `tools` (JSON).
A converter raises BadRow when a row cannot be used (the pipeline names dataset and row), or Skip when
a row carries nothing to learn from by design (an empty line of a text corpus), which is counted.

Adding a format is one module here with one `register_format(Format(...))`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftkit.data.registry import DatasetSpec
from ftkit.errors import UserError

Row = dict[str, Any]
Example = dict[str, Any]
EXAMPLE_FIELDS = ("system", "messages", "chosen", "rejected", "text", "tools")


class BadRow(ValueError):
    """A row that cannot become an example; the message says why."""


class Skip(ValueError):
    """A row with nothing to learn from by design (e.g. an empty line of a corpus); counted, not an error."""


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
    uses_tags: bool = False


FORMATS: dict[str, Format] = {}
COMMON_FIELDS = (
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
    "ranking",
    "where",
    "dedup",
    "min_chars",
    "max_chars",
    "bidirectional",
    "system",
    "columns",
    "name",
)


def register_format(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"dataset format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def example(
    system: str | None = None,
    messages: list[dict[str, str]] | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    text: str | None = None,
    tools: str | None = None,
) -> Example:
    return {
        "system": system,
        "messages": messages or [],
        "chosen": chosen,
        "rejected": rejected,
        "text": text,
        "tools": tools,
    }


def text_value(row: Row, column: str, what: str, allow_empty: bool = False) -> str:
    """The text in `column`; numbers become text (answers of math or label datasets)."""
    value = row.get(column)
    if value is None:
        if allow_empty:
            return ""
        raise BadRow(f"{what} column {column!r} is missing or null")
    if isinstance(value, int | float | bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadRow(f"{what} column {column!r} holds {type(value).__name__}, expected text")
    if not allow_empty and not value.strip():
        raise BadRow(f"{what} column {column!r} is empty")
    return value


def row_system(row: Row, spec: DatasetSpec) -> str | None:
    """The row's own system prompt (columns.system), else the entry's `system`."""
    if spec.columns.system:
        value = text_value(row, spec.columns.system, "system", allow_empty=True)
        if value:
            return value
    return spec.system


def check_entry(spec: DatasetSpec, stage: str | None = None) -> None:
    """Registry fields set on the entry that its format would ignore are an error, not silently dropped;
    with `stage`, the entry must also hold the kind of data that stage trains on."""
    fmt = FORMATS[spec.formatting]
    unused = [name for name in spec.model_fields_set if name not in (*COMMON_FIELDS, *fmt.options, "tags")]
    if "tags" in spec.model_fields_set and not fmt.uses_tags:
        unused.append("tags")
    unused += [f"columns.{name}" for name in spec.columns.model_fields_set if name not in fmt.columns]
    if unused:
        raise UserError(
            f"dataset {spec.name!r}: {', '.join(sorted(set(unused)))} does not apply to formatting "
            f"{spec.formatting}; remove it or change the formatting"
        )
    if stage == "dpo" and not spec.ranking:
        raise UserError(
            f"dataset {spec.name!r} has no chosen/rejected answers; stage dpo needs ranking: true data"
        )
    if stage is not None and stage != "dpo" and spec.ranking:
        raise UserError(
            f"dataset {spec.name!r} is preference data (ranking: true); stage {stage} cannot train on it"
        )
    if spec.file_name and "split" in spec.model_fields_set and spec.split != "train":
        raise UserError(
            f"dataset {spec.name!r}: split applies to hub datasets; a local file_name is one split"
        )


def _register_builtins() -> None:
    import importlib

    for module in ("alpaca", "messages", "columns", "text"):  # importing a format module registers it
        importlib.import_module(f"{__name__}.{module}")


_register_builtins()
