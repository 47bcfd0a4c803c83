"""What every dataset format shares: the normalized example, bad and skipped rows, the Format declaration.

The normalized example has the same fields for every format, so datasets of any format can be mixed:
`system` (str | None), `messages` ([{role, content}], ending with the answer for supervised data),
`chosen` / `rejected` (preference answers), `feedback` (whether the answer is desirable, for unpaired
feedback: KTO), `text` (a document, for pretraining) and `tools` (JSON).
A converter raises BadRow when a row cannot be used (the pipeline names dataset and row), or Skip when
a row carries nothing to learn from by design (an empty line of a text corpus), which is counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec

Row = dict[str, Any]
Example = dict[str, Any]
EXAMPLE_FIELDS = (
    "system",
    "messages",
    "chosen",
    "rejected",
    "feedback",
    "text",
    "tools",
    "variables",
    "group",
)


class BadRow(ValueError):
    """A row that cannot become an example; the message says why."""


class Skip(ValueError):
    """A row with nothing to learn from by design (e.g. an empty line of a corpus); counted, not an error."""


@dataclass(frozen=True)
class Format:
    """A registry `formatting`: how a raw row becomes a normalized example, and what the entry must say."""

    name: str
    convert: Callable[[Row, DatasetSpec], Example]
    required_columns: Callable[[DatasetSpec], list[str]]
    """Columns that must exist in the dataset (checked once, before any row is converted)."""
    columns: tuple[str, ...] = ()
    """The `columns` keys this format reads; setting any other is an error, not silently ignored."""
    options: tuple[str, ...] = ()
    """The format-specific registry fields it reads (e.g. prompt_format)."""
    uses_tags: bool = False
    ranking: bool = False
    """Holds preference data when the entry says `ranking: true` (chosen and rejected answers)."""
    check: Callable[[DatasetSpec], None] | None = None
    """The entry's format-specific rules (e.g. pairs needs prompt_format); raises ValueError."""
    description: str = ""

    def __post_init__(self) -> None:
        if not (callable(self.convert) and callable(self.required_columns)):
            raise TypeError(f"dataset format {self.name!r}: convert and required_columns must be functions")
        if self.check is not None and not callable(self.check):
            raise TypeError(f"dataset format {self.name!r}: check must be a function or None")


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
    "group_column",
    "group_map",
    "rewards",
    "system",
    "columns",
    "name",
)
COMMON_COLUMNS = ("template_vars",)
"""`columns` keys every format reads."""


def example(
    system: str | None = None,
    messages: list[dict[str, str]] | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    text: str | None = None,
    tools: str | None = None,
    variables: str | None = None,
    feedback: bool | None = None,
    group: str | None = None,
) -> Example:
    return {
        "system": system,
        "messages": messages or [],
        "chosen": chosen,
        "rejected": rejected,
        "feedback": feedback,
        "text": text,
        "tools": tools,
        "variables": variables,
        "group": group,
    }


def row_variables(row: Row, spec: DatasetSpec) -> str | None:
    """The row's chat template variables (columns.template_vars) as JSON text of a text-valued object."""
    column = spec.columns.template_vars
    value = row.get(column) if column else None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRow(f"template_vars column {column!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise BadRow(f"template_vars column {column!r} holds {type(value).__name__}, expected an object")
    variables = {
        key: str(item).lower() if isinstance(item, bool) else str(item) for key, item in value.items()
    }
    return json.dumps(variables, sort_keys=True) if variables else None


FEEDBACK_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def row_feedback(row: Row, spec: DatasetSpec) -> bool | None:
    """The row's unpaired-feedback label (columns.kto_tag): true when the answer is desirable."""
    column = spec.columns.kto_tag
    if not column:
        return None
    value = row.get(column)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in FEEDBACK_WORDS:
        return FEEDBACK_WORDS[value.strip().lower()]
    raise BadRow(
        f"kto_tag column {column!r} holds {value!r}; expected true or false (desirable answer or not)"
    )


def row_group(row: Row, spec: DatasetSpec) -> str | None:
    """The row's eval group (group_column, named through group_map): `ftkit eval` breaks scores down by it."""
    if not spec.group_column:
        return None
    value = row.get(spec.group_column)
    if value is None:
        return None
    key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return (spec.group_map or {}).get(key, key)


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
