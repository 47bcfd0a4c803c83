"""Recipe datasets to a stage's training data: load, filter, convert, mix, split, process, report, cache.

Every row that does not become an example is accounted for: filtered by the entry (`where`, length,
dedup, empty documents; counted), or bad (an error naming the dataset and row, or skipped and counted
with `on_bad_rows: skip`). The result is cached on disk (data/cache.py); a second run with the same
inputs skips all of it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ftkit.config.recipe import Recipe
from ftkit.config.sections.data import DatasetRef
from ftkit.data.cache import DataCache, cache_key, file_digest, tokenizer_fingerprint
from ftkit.data.formats import (
    EXAMPLE_FIELDS,
    FORMATS,
    BadRow,
    Skip,
    row_feedback,
    row_group,
    row_variables,
)
from ftkit.data.loaders import load_rows, local_files
from ftkit.data.processors import ProcessOptions
from ftkit.data.registry import DatasetSpec, Registry
from ftkit.data.tokenize import MaskOptions
from ftkit.data.transforms import (
    example_hash,
    first_occurrences,
    hold_out,
    length_problem,
    matches,
    mix,
    shared_prompts,
)
from ftkit.errors import UserError
from ftkit.stages import check_dataset, get_stage, stage_for
from ftkit.stages.spec import StageSpec

log = logging.getLogger(__name__)


@dataclass
class DatasetReport:
    name: str
    source: str
    rows: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    """Rows or examples the entry removes on purpose (where, length, dedup, empty text), by reason."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Bad rows skipped with on_bad_rows: skip, by reason."""
    examples: int = 0
    used: int | None = None
    """Examples that went into a weighted mixture (None when datasets are concatenated)."""


@dataclass
class SplitReport:
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    """Tokens per example: p50, p90, p99, max."""


@dataclass
class DataReport:
    datasets: list[DatasetReport] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    eval_overlap: int = 0
    """Eval examples whose prompt is also a training example's (warned about)."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """Fingerprints of what shapes the training split: each train dataset (its data and registry entry),
    the tokenizer and the template. A resume compares them with the recorded run's."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataReport:
        return cls(
            [DatasetReport(**d) for d in data["datasets"]],
            {name: SplitReport(**s) for name, s in data["splits"].items()},
            data.get("cache", {}),
            data.get("eval_overlap", 0),
            data.get("inputs", {}),
        )


@dataclass
class BuiltData:
    train: Any
    eval: Any | None
    report: DataReport

    def for_trainer(self, stage: str) -> tuple[Any, Any | None]:
        """The splits with only the columns the stage's trainer reads."""
        columns = list(get_stage(stage).shape.columns)
        return self.train.select_columns(columns), None if self.eval is None else self.eval.select_columns(
            columns
        )


# ------------------------------------------------------------------ loading and converting


def check_columns(spec: DatasetSpec, available: list[str]) -> None:
    needed = list(FORMATS[spec.formatting].required_columns(spec))
    needed += (
        list(spec.where)
        + list(spec.bidirectional or [])
        + [c for c in (spec.columns.template_vars, spec.columns.kto_tag, spec.group_column) if c]
    )
    missing = [c for c in dict.fromkeys(needed) if c not in available]
    if missing:
        raise UserError(
            f"dataset {spec.name!r} ({spec.source}) has no column {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(available)}. Fix `columns` or the format strings in the registry entry."
        )


def convert_batch(batch: dict[str, list], spec: DatasetSpec) -> dict[str, list]:
    convert = FORMATS[spec.formatting].convert
    out: dict[str, list] = {name: [] for name in (*EXAMPLE_FIELDS, "_dataset", "_row", "_problem", "_filter")}
    columns = [c for c in batch if c != "_row"]
    for position, row_index in enumerate(batch["_row"]):
        row = {column: batch[column][position] for column in columns}
        variants = [row]
        if spec.bidirectional:
            first, second = spec.bidirectional
            variants.append({**row, first: row[second], second: row[first]})
        for variant in variants:
            converted, problem, dropped = None, None, None
            try:
                converted = {
                    **convert(variant, spec),
                    "variables": row_variables(variant, spec),
                    "feedback": row_feedback(variant, spec),
                    "group": row_group(variant, spec),
                }
                dropped = length_problem(converted, spec)
            except BadRow as exc:
                problem = str(exc)
            except Skip as exc:
                dropped = str(exc)
            for name in EXAMPLE_FIELDS:
                out[name].append(converted[name] if converted else ([] if name == "messages" else None))
            out["_dataset"].append(spec.name)
            out["_row"].append(row_index)
            out["_problem"].append(problem)
            out["_filter"].append(dropped)
            if problem:
                break
    return out


def _first_problem(problems: list[str | None]) -> int:
    return next(index for index, problem in enumerate(problems) if problem is not None)


def bad_row_error(dataset: str, source: str, row: int, problem: str) -> UserError:
    return UserError(
        f"dataset {dataset!r} ({source}), row {row + 1}: {problem}. "
        "Fix the row, or set data.on_bad_rows: skip to skip such rows and count them."
    )


def load_examples(
    ref: DatasetRef, registry: Registry, rows: Any, recipe: Recipe
) -> tuple[Any, DatasetReport]:
    """One registry entry's rows as normalized examples, with its report.

    Order: `where`, then the row limit (num_samples / data.max_samples count kept rows), conversion
    (bidirectional entries yield two examples per row), length filters, then deduplication.
    """
    spec = registry.get(ref.name)
    report = DatasetReport(ref.name, spec.source, rows=len(rows))
    filtered: Counter = Counter()
    if not rows:
        raise UserError(f"dataset {ref.name!r} ({spec.source}) has no rows")
    rows = rows.add_column("_row", list(range(len(rows))))
    num_proc = recipe.data.num_proc
    if spec.where:
        rows = rows.filter(
            matches, fn_kwargs={"where": spec.where}, num_proc=num_proc, desc=f"Filtering {ref.name}"
        )
        filtered["where"] = report.rows - len(rows)
        if not rows:
            raise UserError(
                f"dataset {ref.name!r}: no row matches where={spec.where} (of {report.rows} rows)"
            )
    limits = [n for n in (spec.num_samples, recipe.data.max_samples) if n is not None]
    if limits and min(limits) < len(rows):
        rows = rows.select(range(min(limits)))
    converted = rows.map(
        convert_batch,
        batched=True,
        fn_kwargs={"spec": spec},
        remove_columns=rows.column_names,
        num_proc=num_proc,
        desc=f"Converting {ref.name}",
    )
    problems = Counter(p for p in converted["_problem"] if p is not None)
    if problems:
        if recipe.data.on_bad_rows == "error":
            first = converted[_first_problem(converted["_problem"])]
            raise bad_row_error(ref.name, spec.source, first["_row"], first["_problem"])
        report.skipped = dict(problems)
        log.warning("dataset %s: skipped %d bad rows: %s", ref.name, problems.total(), dict(problems))
    filtered.update(p for p in converted["_filter"] if p is not None)
    keep = [
        i
        for i, (p, f) in enumerate(zip(converted["_problem"], converted["_filter"], strict=True))
        if p is None and f is None
    ]
    examples = converted.select(keep).remove_columns(["_problem", "_filter"])
    if spec.dedup and len(examples):
        hashes = [example_hash(e) for e in examples]
        unique = first_occurrences(hashes)
        filtered["duplicate"] = len(examples) - len(unique)
        examples = examples.select(unique)
    report.filtered = {reason: count for reason, count in filtered.items() if count}
    if not examples:
        raise UserError(
            f"dataset {ref.name!r}: no example is left (bad rows {dict(problems)}, filtered {report.filtered})"
        )
    report.examples = len(examples)
    return examples, report


# ------------------------------------------------------------------ processing


def _percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    ordered = sorted(lengths)

    def at(q: float) -> int:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


def _split_stats(processed: Any, stage: StageSpec, report: SplitReport) -> None:
    report.examples = len(processed)
    measure = stage.shape.measure
    if measure is None:  # nothing is tokenized up front (prompts)
        return
    lengths, trained = measure(processed)
    report.tokens, report.trained_tokens, report.lengths = sum(lengths), trained, _percentiles(lengths)


def process_split(
    examples: Any, split: str, tokenizer: Any, template: Any, recipe: Recipe, sources: dict[str, str]
) -> tuple[Any, SplitReport]:
    """Run the stage's processor over a split; bad examples are errors or counted skips.

    `sources` maps dataset names to where their rows come from, for error messages."""
    data, stage = recipe.data, stage_for(recipe)
    options = ProcessOptions(
        MaskOptions(data.max_length, data.train_on_prompt, data.mask_history), data.system, data.template_vars
    )
    processed = examples.map(
        stage.process,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "template": template, "options": options},
        remove_columns=list(EXAMPLE_FIELDS),
        num_proc=data.num_proc,
        desc=f"Tokenizing {split}",
    )
    report = SplitReport()
    problems = Counter(p for p in processed["_problem"] if p is not None)
    if problems:
        if data.on_bad_rows == "error":
            bad = processed[_first_problem(processed["_problem"])]
            raise bad_row_error(bad["_dataset"], sources[bad["_dataset"]], bad["_row"], bad["_problem"])
        report.skipped = dict(problems)
        log.warning("%s: skipped %d examples: %s", split, problems.total(), dict(problems))
        processed = processed.filter(lambda problem: problem is None, input_columns="_problem")
        if not processed:
            raise UserError(f"{split}: every example was skipped: {dict(problems)}")
    report.truncated = sum(processed["_truncated"])
    if report.truncated:
        log.warning(
            "%s: %d examples were longer than data.max_length=%d and lost their end",
            split,
            report.truncated,
            data.max_length,
        )
    processed = processed.remove_columns(["_problem", "_truncated"])
    if stage.regroup is not None:
        processed = processed.map(
            stage.regroup,
            batched=True,
            batch_size=1000,
            fn_kwargs={"max_length": data.max_length},
            remove_columns=processed.column_names,
            desc=f"Regrouping {split}",
        )
    _split_stats(processed, stage, report)
    return processed, report


# ------------------------------------------------------------------ orchestration


def read_sources(
    recipe: Recipe, registry: Registry, with_train: bool = True
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every referenced entry's rows (loaded once) and a fingerprint of its data."""
    rows, fingerprints = {}, {}
    for ref in [*(recipe.data.train if with_train else []), *recipe.data.eval]:
        if ref.name in rows:
            continue
        spec = registry.get(ref.name)
        check_dataset(spec, stage_for(recipe))
        loaded = load_rows(spec, registry.dataset_dir)
        check_columns(spec, loaded.column_names)
        rows[ref.name] = loaded
        if spec.file_name:
            _, files = local_files(spec, registry.dataset_dir)
            fingerprints[ref.name] = ",".join(file_digest(f) for f in files)
        else:
            # The loaded data's own fingerprint: a branch such as main moves, and its data with it.
            fingerprints[ref.name] = loaded._fingerprint
    return rows, fingerprints


def input_fingerprints(
    recipe: Recipe, registry: Registry, fingerprints: dict[str, str], tokenizer: Any, template: Any
) -> dict[str, Any]:
    """Fingerprints of the training split's inputs (DataReport.inputs)."""
    return {
        "dataset": {
            ref.name: cache_key({"source": fingerprints[ref.name], "entry": registry.fingerprint(ref.name)})
            for ref in recipe.data.train
        },
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "template": template.fingerprint() if template is not None else None,
    }


def _key(
    recipe: Recipe, registry: Registry, fingerprints: dict[str, str], tokenizer: Any, template: Any
) -> str:
    data = recipe.data.model_dump(mode="json", exclude={"dataset_dir", "num_proc", "cache", "cache_dir"})
    entries = {name: registry.fingerprint(name) for name in fingerprints}
    return cache_key(
        {
            "stage": recipe.stage,
            "seed": recipe.train.seed,
            "data": data,
            "entries": entries,
            "sources": fingerprints,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "template": template.fingerprint() if template is not None else None,
        }
    )


def normalize(
    recipe: Recipe, registry: Registry, rows: dict[str, Any], report: DataReport, with_train: bool = True
) -> tuple[Any, Any | None]:
    """The recipe's train and eval splits as normalized examples (mixed, held out), before processing;
    without `with_train`, train is None (a stream is never read whole)."""

    def normalized(refs: list[DatasetRef]) -> Any:
        parts = []
        for ref in refs:
            examples, dataset_report = load_examples(ref, registry, rows[ref.name], recipe)
            parts.append(examples)
            report.datasets.append(dataset_report)
        mixed, used = mix(parts, refs, recipe.train.seed, recipe.data.mix_stop)
        if refs[0].weight is not None:
            for dataset_report in report.datasets[-len(refs) :]:
                dataset_report.used = used[dataset_report.name]
        return mixed

    train = normalized(recipe.data.train) if with_train else None
    evaluation = normalized(recipe.data.eval) if recipe.data.eval else None
    if recipe.data.val_size is not None:
        train, evaluation = hold_out(train, recipe.data.val_size, recipe.train.seed)
    if evaluation is not None and train is not None:
        report.eval_overlap = shared_prompts(train, evaluation)
        if report.eval_overlap:
            log.warning(
                "%d of %d eval examples ask what a training example asks: their scores are not held-out",
                report.eval_overlap,
                len(evaluation),
            )
    return train, evaluation


def normalized_splits(recipe: Recipe) -> tuple[Any | None, Any | None, Registry]:
    """Normalized train and eval examples (what `ftkit eval` generates from), and the registry; with
    data.streaming, train is None: the stream is not read whole."""
    registry = Registry(recipe.data.dataset_dir)
    with_train = not recipe.data.streaming
    rows, _ = read_sources(recipe, registry, with_train)
    train, evaluation = normalize(recipe, registry, rows, DataReport(), with_train)
    return train, evaluation, registry


def build_data(recipe: Recipe, tokenizer: Any, template: Any) -> BuiltData:
    """The stage's train (and eval) data for the recipe, from the cache when the inputs are unchanged."""
    registry = Registry(recipe.data.dataset_dir)
    rows, fingerprints = read_sources(recipe, registry)
    key = _key(recipe, registry, fingerprints, tokenizer, template)
    inputs = input_fingerprints(recipe, registry, fingerprints, tokenizer, template)
    cache = DataCache(recipe.data.cache_dir) if recipe.data.cache else None
    if cache is not None and (hit := cache.load(key)) is not None:
        splits, saved = hit
        report = DataReport.from_dict(saved)
        report.cache = {"key": key, "hit": True, "path": str(cache.path(key))}
        report.inputs = inputs
        if report.eval_overlap:
            log.warning(
                "%d eval examples ask what a training example asks: their scores are not held-out",
                report.eval_overlap,
            )
        return BuiltData(splits["train"], splits.get("eval"), report)

    report = DataReport(inputs=inputs)
    train, evaluation = normalize(recipe, registry, rows, report)
    splits = {"train": train} if evaluation is None else {"train": train, "eval": evaluation}
    sources = {name: registry.get(name).source for name in rows}
    for name in list(splits):
        splits[name], report.splits[name] = process_split(
            splits[name], name, tokenizer, template, recipe, sources
        )
    report.cache = {"key": key, "hit": False}
    if cache is not None:
        report.cache["path"] = str(cache.save(key, splits, {**report.as_dict(), "cache": {}}))
    return BuiltData(splits["train"], splits.get("eval"), report)
