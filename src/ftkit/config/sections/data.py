"""`data:` which registered datasets to train and evaluate on, and how examples are built."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ftkit.config.sections.base import ConfigConflict, Section


class DatasetRef(Section):
    """A dataset named in the registry (`<dataset_dir>/dataset_info.json`), with an optional mixture weight."""

    name: str = Field(min_length=1)
    """Registry key of the dataset."""
    weight: float | None = Field(None, gt=0)
    """Relative sampling weight when mixing datasets; without weights, datasets are concatenated."""


def _as_refs(value: Any) -> Any:
    """Accept `name`, `[name, ...]` and `[{name, weight}, ...]`."""
    if value is None:
        return []
    if isinstance(value, str | dict):
        value = [value]
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


class DataConfig(Section):
    """Datasets and the shape of the tokenized examples."""

    dataset_dir: str = "data"
    """Folder holding dataset_info.json and the local data files it names (relative to the working directory)."""
    train: list[DatasetRef] = Field(min_length=1)
    """Training datasets: a name, a list of names, or a list of {name, weight}."""
    eval: list[DatasetRef] = Field(default_factory=list)
    """Evaluation datasets (same forms as train)."""
    val_size: float | None = Field(None, gt=0)
    """Hold out part of train for evaluation instead: a fraction (0 < x < 1) or a number of rows (>= 1)."""
    max_length: int = Field(1024, ge=8)
    """Maximum tokens per example (per packed sequence when packing); longer examples are truncated and counted."""
    packing: bool = False
    """Pack several examples into each max_length sequence without attention across them."""
    padding_free: bool = False
    """Without packing: put each batch's examples end to end in one sequence instead of padding them to
    the longest (no pad token is computed). Packing is always padding-free."""
    train_on_prompt: bool = False
    """Also train on system and user turns (by default only assistant turns are trained)."""
    mask_history: bool = False
    """Train only the last assistant turn of each conversation."""
    system: str | None = None
    """System prompt for examples that have none (overrides the template's default system prompt)."""
    template_vars: dict[str, str] = Field(default_factory=dict)
    """Chat template variables for every example, e.g. {enable_thinking: false} (Qwen3) or {date_string:
    "26 Jul 2024"} (Llama 3.1); a row's own (the registry's columns.template_vars) win. Generation and
    `ftkit eval` render prompts with them too."""
    max_samples: int | None = Field(None, ge=1)
    """Use at most this many rows of each dataset (the first rows, before shuffling; a stream's processes
    share them out)."""
    mix_stop: Literal["first_exhausted", "all_exhausted"] = "first_exhausted"
    """Weighted mixtures: stop when the first dataset runs out (no example repeats; the unused rest is
    counted), or when every dataset has been seen once (smaller ones repeat)."""
    num_proc: int | None = Field(None, ge=1)
    """Processes for conversion and tokenization; default: one."""
    cache: bool = True
    """Reuse tokenized data from an earlier run with identical inputs (see cache_dir); off for a stream."""
    cache_dir: str = "~/.cache/ftkit/data"
    """Where tokenized data is cached, keyed by a hash of data, registry entries, tokenizer, template and options."""
    on_bad_rows: Literal["error", "skip"] = "error"
    """A row that cannot be used stops the run with its location (error) or is skipped and counted (skip)."""
    streaming: bool = False
    """Stream the training datasets (stages pt and sft): rows are read, converted, tokenized and packed while
    the model trains, so memory stays flat however large the corpus. Each process reads its own share, weighted
    mixtures are sampled as they go, the streams repeat until train.max_steps (required), and a resumed run
    continues where the stream stopped. Eval datasets are still read whole. See docs/distributed.md."""
    shuffle_buffer: int | None = Field(None, ge=1)
    """With streaming: shuffle the training examples in windows of this many (default 10000; 1 keeps the
    files' order). Each window's order comes from train.seed and its position, so a resumed run replays it."""

    @field_validator("train", "eval", mode="before")
    @classmethod
    def _refs(cls, value: Any) -> Any:
        return _as_refs(value)

    @field_validator("template_vars", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # Template variables are text, as in jinja: an unquoted YAML false is "false".
        if isinstance(value, dict):
            return {
                key: str(item).lower() if isinstance(item, bool) else str(item) for key, item in value.items()
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        self._check_streaming()
        if self.eval and self.val_size is not None:
            raise ConfigConflict("data.val_size", "set data.eval or data.val_size, not both")
        if self.val_size is not None and self.val_size >= 1 and self.val_size != int(self.val_size):
            raise ConfigConflict(
                "data.val_size", "data.val_size is a fraction below 1 or a whole number of rows"
            )
        if self.packing and self.padding_free:
            raise ConfigConflict(
                ("data.padding_free", "data.packing"),
                "data.packing is already padding-free; set data.padding_free only without packing",
            )
        if self.train_on_prompt and self.mask_history:
            raise ConfigConflict(
                ("data.mask_history", "data.train_on_prompt"),
                "data.train_on_prompt trains every token, so data.mask_history would have no effect; choose one",
            )
        for key in ("train", "eval"):
            refs = getattr(self, key)
            names = [ref.name for ref in refs]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ConfigConflict(
                    f"data.{key}",
                    f"data.{key} names {', '.join(repeated)} more than once; give weights to oversample instead",
                )
            weighted = [ref.weight is not None for ref in refs]
            if any(weighted) and not all(weighted):
                raise ConfigConflict(
                    f"data.{key}",
                    f"data.{key}: give every dataset a weight (a mixture) or none (concatenation)",
                )
        return self

    def _check_streaming(self) -> None:
        """Options that need the whole dataset up front do not apply to a stream: say what to use instead."""
        if not self.streaming:
            if self.shuffle_buffer is not None:
                raise ConfigConflict(
                    "data.shuffle_buffer", "data.shuffle_buffer applies to data.streaming: true; remove it"
                )
            return
        given = self.model_fields_set
        refusals = {
            "val_size": (
                self.val_size is not None,
                "data.val_size splits a dataset known in full; with data.streaming name held-out data in "
                "data.eval (a registry entry, limited with its num_samples)",
            ),
            "cache": (
                "cache" in given and self.cache,
                "a stream is tokenized while training and never cached; remove data.cache",
            ),
            "num_proc": (
                self.num_proc is not None,
                "a stream is processed in the training processes as it is read; remove data.num_proc",
            ),
            "mix_stop": (
                "mix_stop" in given,
                "streams repeat until train.max_steps, so no dataset runs out; remove data.mix_stop "
                "(the weights alone set the mixture)",
            ),
        }
        for key, (refused, message) in refusals.items():
            if refused:
                raise ConfigConflict((f"data.{key}", "data.streaming"), message)
