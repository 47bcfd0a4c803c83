"""The dataset registry: `<dataset_dir>/dataset_info.json`, keyed by dataset name.

The schema is LLaMA-Factory's, accepted as it is, plus ftkit's declarative extensions (documented in
docs/datasets.md). Entries are validated when a recipe uses them; unknown fields are errors.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftkit.config.errors import render
from ftkit.data.formats import FORMATS
from ftkit.errors import UserError, listing

REGISTRY_FILE = "dataset_info.json"
Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Columns(_Strict):
    """Which dataset column holds each part of an example (LLaMA-Factory's `columns`)."""

    prompt: str | None = None
    """alpaca: the instruction column (default instruction)."""
    query: str | None = None
    """alpaca: the input column appended to the instruction (default input)."""
    response: str | None = None
    """alpaca: the answer column (default output)."""
    history: str | None = None
    """alpaca: a column of earlier [prompt, response] pairs."""
    messages: str | None = None
    """sharegpt/openai: the column holding the message list."""
    system: str | None = None
    """A column with each row's system prompt."""
    tools: str | None = None
    """A column with each row's tool descriptions."""
    images: str | None = None
    """Multimodal inputs (LLaMA-Factory); not trained by ftkit."""
    videos: str | None = None
    """Multimodal inputs (LLaMA-Factory); not trained by ftkit."""
    audios: str | None = None
    """Multimodal inputs (LLaMA-Factory); not trained by ftkit."""
    chosen: str | None = None
    """Preference data: the preferred answer column."""
    rejected: str | None = None
    """Preference data: the rejected answer column."""
    kto_tag: str | None = None
    """Unpaired feedback (stage kto; LLaMA-Factory's kto_tag): the column saying whether each row's answer is
    desirable (true/false, 1/0, "yes"/"no")."""
    text: str | None = None
    """text (ftkit): the column holding the document (default text; .txt files have it)."""
    template_vars: str | None = None
    """Any format (ftkit): a column holding each row's chat template variables as a mapping or JSON object,
    e.g. {"enable_thinking": false}; they win over the recipe's data.template_vars."""


class Tags(_Strict):
    """Keys and role names inside sharegpt-style message lists (LLaMA-Factory's `tags`)."""

    role_tag: str | None = None
    """Key of a message's role (sharegpt default from, openai default role)."""
    content_tag: str | None = None
    """Key of a message's text (sharegpt default value, openai default content)."""
    user_tag: str | None = None
    """Role value of user turns (human / user)."""
    assistant_tag: str | None = None
    """Role value of assistant turns (gpt / assistant)."""
    observation_tag: str | None = None
    """Role value of tool results (observation / tool)."""
    function_tag: str | None = None
    """Role value of tool calls (function_call)."""
    system_tag: str | None = None
    """Role value of system messages (system)."""


class DatasetSpec(_Strict):
    """One registry entry."""

    name: str = Field(exclude=True)
    """The registry key (filled in by the loader)."""

    file_name: str | None = None
    """Local file or folder, relative to dataset_dir (json, jsonl, csv, parquet, arrow, txt)."""
    hf_hub_url: str | None = None
    """Hugging Face hub dataset id, loaded with datasets.load_dataset."""
    ms_hub_url: str | None = None
    """ModelScope id (LLaMA-Factory); ftkit loads from hf_hub_url or file_name instead."""
    om_hub_url: str | None = None
    """Modelers id (LLaMA-Factory); ftkit loads from hf_hub_url or file_name instead."""
    script_url: str | None = None
    """Dataset loading script (LLaMA-Factory); not supported, scripts run arbitrary code."""
    subset: str | None = None
    """Hub dataset configuration name (e.g. labeled_final)."""
    folder: str | None = None
    """Sub-folder of the hub dataset (data_dir)."""
    split: str = "train"
    revision: str | None = None
    """Hub revision (branch, tag or commit); pin it for reproducible caches."""
    num_samples: int | None = Field(None, ge=1)
    """Use this many rows of the dataset (the first ones)."""
    ranking: bool = False
    """Preference data: each row has a chosen and a rejected answer (stage dpo)."""
    formatting: str = "alpaca"
    """How rows become examples: a name from the format table (below: alpaca, sharegpt, openai, text,
    pairs, classification)."""
    columns: Columns = Field(default_factory=Columns)
    tags: Tags = Field(default_factory=Tags)

    # ftkit extensions
    prompt_format: str | None = None
    """pairs, classification: the user message, with {column} placeholders, e.g. "Paraphrase this: {sentence1}"."""
    response_format: str | None = None
    """pairs: the assistant message, with {column} placeholders, e.g. "{sentence2}"."""
    label_map: dict[str, str] | None = None
    """classification: label value -> answer text, e.g. {"0": "negative", "1": "positive"}; the label column
    is columns.response (default label)."""
    system: str | None = None
    """System prompt for every example of this dataset (unless the row has its own system column)."""
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    """Keep rows whose column equals the value (or is in the list), e.g. {"label": 1}. Counted, not bad rows."""
    dedup: bool = False
    """Drop exact duplicate examples (same system, messages, answers or text), keeping the first; counted."""
    min_chars: int | None = Field(None, ge=1)
    """Drop examples with a message (or text) shorter than this many characters; counted."""
    max_chars: int | None = Field(None, ge=1)
    """Drop examples longer than this many characters in all; counted."""
    rewards: list[str] | None = None
    """GRPO rewards that score this dataset's task (e.g. [numeric_match] for math with #### answers): a grpo
    recipe without grpo.reward_funcs uses its training datasets' rewards (classification entries:
    label_match)."""
    group_column: str | None = None
    """A column that groups the examples for `ftkit eval`'s breakdowns, e.g. difficulty (metric code)."""
    group_map: dict[str, str] | None = None
    """group_column value -> the group's name, e.g. {"1": "EASY", "2": "MEDIUM"}."""
    label_bins: dict[str, float | None] | None = None
    """classification with a numeric label column: label -> upper bound, in increasing order; a value
    below a bound gets that label, a null bound takes the rest, e.g. {"negative": -0.1, "neutral": 0.1,
    "positive": null}. The label then goes through label_map."""
    bidirectional: list[str] | None = None
    """Two interchangeable columns, e.g. [sentence1, sentence2]: every row also yields its swapped copy."""

    @field_validator("formatting")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(
                f"formatting {value!r} is not a dataset format{FORMATS.suggestion(value)}; "
                f"formats: {', '.join(FORMATS)}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        fmt = FORMATS[self.formatting]
        if fmt.check is not None:
            fmt.check(self)
        if self.bidirectional is not None and len(self.bidirectional) != 2:
            raise ValueError("bidirectional names exactly two columns to swap, e.g. [sentence1, sentence2]")
        if self.min_chars and self.max_chars and self.min_chars > self.max_chars:
            raise ValueError("min_chars is larger than max_chars")
        if self.ranking and self.columns.kto_tag:
            raise ValueError(
                "kto_tag labels single answers and ranking holds answer pairs: an entry is one or the other"
            )
        if self.ranking and not fmt.ranking:
            holding = listing([name for name, other in FORMATS.items() if other.ranking], "or")
            raise ValueError(f"ranking (preference data) works with {holding}, not {self.formatting}")
        return self

    @property
    def source(self) -> str:
        """Human-readable origin: the file or the hub id with its subset and split."""
        if self.file_name:
            return self.file_name
        parts = [self.hf_hub_url or self.ms_hub_url or self.om_hub_url or self.script_url or "?"]
        if self.subset:
            parts.append(f"subset={self.subset}")
        parts.append(f"split={self.split}")
        return " ".join(parts)


class Registry:
    """The parsed registry file; entries are validated on first use."""

    def __init__(self, dataset_dir: str | Path) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.path = self.dataset_dir / REGISTRY_FILE
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(
                f"no dataset registry at {self.path}: set data.dataset_dir to the folder holding "
                f"{REGISTRY_FILE}"
            ) from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{self.path}: the registry is a JSON object keyed by dataset name")
        self.entries: dict[str, dict] = raw
        self._validated: dict[str, DatasetSpec] = {}

    def names(self) -> list[str]:
        return list(self.entries)

    def fingerprint(self, name: str) -> str:
        """The entry as written, canonically serialized (part of the tokenized-data cache key)."""
        return json.dumps(self.entries[name], sort_keys=True, ensure_ascii=False)

    def get(self, name: str) -> DatasetSpec:
        """The entry, validated (once per registry: a run asks for each entry several times)."""
        if name not in self._validated:
            self._validated[name] = self._validate(name)
        return self._validated[name]

    def _validate(self, name: str) -> DatasetSpec:
        if name not in self.entries:
            close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(
                f"dataset {name!r} is not in {self.path}{hint}; `ftkit datasets` lists the entries"
            )
        entry = self.entries[name]
        if not isinstance(entry, dict):
            raise UserError(f"{self.path}: entry {name!r} must be a JSON object")
        try:
            spec = DatasetSpec.model_validate({**entry, "name": name})
        except ValidationError as exc:
            problems = render(exc, DatasetSpec, lambda key: None)
            raise UserError(f"{self.path}: entry {name!r}: " + "; ".join(problems)) from None
        if not (spec.file_name or spec.hf_hub_url):
            elsewhere = spec.ms_hub_url or spec.om_hub_url or spec.script_url
            reason = f"names only {elsewhere!r}, which ftkit does not load" if elsewhere else "names no data"
            raise UserError(f"{self.path}: entry {name!r} {reason}; give it a file_name or an hf_hub_url")
        return spec
