"""Recipe datasets to tokenized training data: load, filter, convert, mix, split, tokenize, report.

Every row that does not become an example is accounted for: filtered by `where` (counted), or bad
(an error naming the dataset and row, or skipped and counted with `on_bad_rows: skip`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ftkit.config.recipe import Recipe
from ftkit.config.sections.data import DatasetRef
from ftkit.data.formats import FORMATS, BadRow, check_entry
from ftkit.data.loaders import load_rows
from ftkit.data.registry import DatasetSpec, Registry
from ftkit.data.tokenize import IGNORE_INDEX, MaskOptions, encode_conversations
from ftkit.errors import UserError
from ftkit.templates import Template, TemplateError

log = logging.getLogger(__name__)


@dataclass
class DatasetReport:
    name: str
    source: str
    rows: int = 0
    filtered: int = 0
    """Rows removed by the entry's `where` filter (not bad rows: the entry asks for it)."""
    skipped: Counter = field(default_factory=Counter)
    """Bad rows skipped (on_bad_rows: skip), by reason."""
    examples: int = 0


@dataclass
class SplitReport:
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass
class DataReport:
    datasets: list[DatasetReport] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "datasets": [{**vars(d), "skipped": dict(d.skipped)} for d in self.datasets],
            "splits": {name: {**vars(s), "skipped": dict(s.skipped)} for name, s in self.splits.items()},
        }


def _matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for column, wanted in where.items():
        value = row.get(column)
        if isinstance(wanted, list) and value not in wanted:
            return False
        if not isinstance(wanted, list) and value != wanted:
            return False
    return True


def _check_columns(spec: DatasetSpec, available: list[str]) -> None:
    needed = list(FORMATS[spec.formatting].required_columns(spec))
    needed += list(spec.where) + list(spec.bidirectional or [])
    missing = [c for c in dict.fromkeys(needed) if c not in available]
    if missing:
        raise UserError(
            f"dataset {spec.name!r} ({spec.source}) has no column {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(available)}. Fix `columns` or the format strings in the registry entry."
        )


def _convert_batch(batch: dict[str, list], spec: DatasetSpec) -> dict[str, list]:
    convert = FORMATS[spec.formatting].convert
    out: dict[str, list] = {"system": [], "messages": [], "_dataset": [], "_row": [], "_problem": []}
    columns = [c for c in batch if c != "_row"]
    for position, row_index in enumerate(batch["_row"]):
        row = {column: batch[column][position] for column in columns}
        variants = [row]
        if spec.bidirectional:
            first, second = spec.bidirectional
            variants.append({**row, first: row[second], second: row[first]})
        for variant in variants:
            try:
                example, problem = convert(variant, spec), None
            except BadRow as exc:
                example, problem = None, str(exc)
            out["system"].append(example["system"] if example else None)
            out["messages"].append(example["messages"] if example else [])
            out["_dataset"].append(spec.name)
            out["_row"].append(row_index)
            out["_problem"].append(problem)
            if problem:
                break
    return out


def load_examples(ref: DatasetRef, registry: Registry, recipe: Recipe) -> tuple[Any, DatasetReport]:
    """One registry entry as normalized examples ({system, messages}), with its report.

    Order: `where` filter, then the row limit (num_samples / data.max_samples counts kept rows), then
    conversion (bidirectional entries yield two examples per row).
    """
    spec = registry.get(ref.name)
    check_entry(spec)
    report = DatasetReport(ref.name, spec.source)
    rows = load_rows(spec, registry.dataset_dir)
    _check_columns(spec, rows.column_names)
    report.rows = len(rows)
    if not rows:
        raise UserError(f"dataset {ref.name!r} ({spec.source}) has no rows")
    rows = rows.add_column("_row", list(range(len(rows))))
    if spec.where:
        rows = rows.filter(
            _matches,
            fn_kwargs={"where": spec.where},
            num_proc=recipe.data.num_proc,
            desc=f"Filtering {ref.name}",
        )
        report.filtered = report.rows - len(rows)
        if not rows:
            raise UserError(
                f"dataset {ref.name!r}: no row matches where={spec.where} (of {report.rows} rows)"
            )
    limits = [n for n in (spec.num_samples, recipe.data.max_samples) if n is not None]
    if limits and min(limits) < len(rows):
        rows = rows.select(range(min(limits)))
    converted = rows.map(
        _convert_batch,
        batched=True,
        fn_kwargs={"spec": spec},
        remove_columns=rows.column_names,
        num_proc=recipe.data.num_proc,
        desc=f"Converting {ref.name}",
    )
    problems = Counter(p for p in converted["_problem"] if p is not None)
    if problems:
        if recipe.data.on_bad_rows == "error":
            first = next(i for i, p in enumerate(converted["_problem"]) if p is not None)
            _raise_bad_row(ref.name, spec.source, converted[first]["_row"], converted[first]["_problem"])
        report.skipped = problems
        log.warning("dataset %s: skipped %d bad rows: %s", ref.name, problems.total(), dict(problems))
        converted = converted.filter(lambda problem: problem is None, input_columns="_problem")
        if not converted:
            raise UserError(f"dataset {ref.name!r}: every row was skipped as bad: {dict(problems)}")
    examples = converted.remove_columns(["_problem"])
    report.examples = len(examples)
    return examples, report


def _raise_bad_row(dataset: str, source: str, row: int, problem: str) -> None:
    raise UserError(
        f"dataset {dataset!r} ({source}), row {row + 1}: {problem}. "
        "Fix the row, or set data.on_bad_rows: skip to skip such rows and count them."
    )


def mix(parts: list[Any], refs: list[DatasetRef], seed: int) -> Any:
    """Concatenate, or interleave with the given weights (seeded) when the refs carry weights."""
    import datasets

    if len(parts) == 1:
        return parts[0]
    if refs[0].weight is None:
        return datasets.concatenate_datasets(parts)
    total = sum(ref.weight for ref in refs)
    return datasets.interleave_datasets(
        parts,
        probabilities=[ref.weight / total for ref in refs],
        seed=seed,
        stopping_strategy="first_exhausted",
    )


def _tokenize_batch(
    batch: dict[str, list], tokenizer: Any, template: Template, options: MaskOptions, system: str | None
) -> dict[str, list]:
    examples = []
    problems: list[str | None] = []
    for row_system, messages in zip(batch["system"], batch["messages"], strict=True):
        examples.append({"system": row_system if row_system is not None else system, "messages": messages})
    try:
        encoded = encode_conversations(tokenizer, template, examples, options)
        problems = [e.problem for e in encoded]
    except TemplateError:
        # Re-encode one by one to attribute the template error to its row.
        encoded = []
        for example in examples:
            try:
                encoded += encode_conversations(tokenizer, template, [example], options)
                problems.append(encoded[-1].problem)
            except TemplateError as exc:
                encoded.append(None)
                problems.append(str(exc))
    return {
        "input_ids": [e.input_ids if e else [] for e in encoded],
        "labels": [e.labels if e else [] for e in encoded],
        "_truncated": [bool(e and e.truncated) for e in encoded],
        "_problem": problems,
    }


def tokenize(
    examples: Any, split: str, tokenizer: Any, template: Template, recipe: Recipe
) -> tuple[Any, SplitReport]:
    """Tokenize normalized examples with the template; drop or reject unusable ones; report counts."""
    data = recipe.data
    options = MaskOptions(data.max_length, data.train_on_prompt, data.mask_history)
    encoded = examples.map(
        _tokenize_batch,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "template": template, "options": options, "system": data.system},
        remove_columns=["system", "messages"],
        num_proc=data.num_proc,
        desc=f"Tokenizing {split}",
    )
    report = SplitReport()
    problems = Counter(p for p in encoded["_problem"] if p is not None)
    if problems:
        if data.on_bad_rows == "error":
            first = next(i for i, p in enumerate(encoded["_problem"]) if p is not None)
            bad = encoded[first]
            raise UserError(
                f"dataset {bad['_dataset']!r}, row {bad['_row'] + 1}: {bad['_problem']}. "
                "Fix the data or data.max_length, or set data.on_bad_rows: skip."
            )
        report.skipped = problems
        log.warning("%s: skipped %d examples: %s", split, problems.total(), dict(problems))
        encoded = encoded.filter(lambda problem: problem is None, input_columns="_problem")
        if not encoded:
            raise UserError(f"{split}: every example was skipped: {dict(problems)}")
    report.truncated = sum(encoded["_truncated"])
    if report.truncated:
        log.warning(
            "%s: %d examples were longer than data.max_length=%d and were truncated",
            split,
            report.truncated,
            data.max_length,
        )
    encoded = encoded.remove_columns(["_problem", "_truncated", "_row", "_dataset"])
    report.examples = len(encoded)
    for labels in encoded["labels"]:
        report.tokens += len(labels)
        report.trained_tokens += sum(1 for label in labels if label != IGNORE_INDEX)
    return encoded, report


def _hold_out(examples: Any, size: float, seed: int) -> tuple[Any, Any]:
    """Split data.val_size (a fraction, or a number of rows) off the training examples, seeded."""
    count = int(size) if size >= 1 else round(size * len(examples))
    if not 1 <= count < len(examples):
        raise UserError(
            f"data.val_size={size:g} would hold out {count} of {len(examples)} examples; "
            "it must leave at least one example on each side"
        )
    split = examples.train_test_split(test_size=count, seed=seed)
    return split["train"], split["test"]


def build_sft_data(recipe: Recipe, tokenizer: Any, template: Template) -> tuple[Any, Any | None, DataReport]:
    """Train and eval datasets of input_ids/labels for the sft stage, and what happened to every row."""
    registry = Registry(recipe.data.dataset_dir)
    report = DataReport()

    def load(refs: list[DatasetRef]) -> Any:
        parts = []
        for ref in refs:
            examples, dataset_report = load_examples(ref, registry, recipe)
            parts.append(examples)
            report.datasets.append(dataset_report)
        return mix(parts, refs, recipe.train.seed)

    train = load(recipe.data.train)
    evaluation = load(recipe.data.eval) if recipe.data.eval else None
    if recipe.data.val_size is not None:
        train, evaluation = _hold_out(train, recipe.data.val_size, recipe.train.seed)
    train, report.splits["train"] = tokenize(train, "train", tokenizer, template, recipe)
    if evaluation is not None:
        evaluation, report.splits["eval"] = tokenize(evaluation, "eval", tokenizer, template, recipe)
    return train, evaluation, report
