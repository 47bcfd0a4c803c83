"""Streamed training data (data.streaming): data/pipeline.py's conversion, filters, tokenization and block
cutting, applied lazily on `datasets`' iterable datasets while the model trains.

Per training dataset: this process's share of the rows (whole files per process when their number divides
evenly, otherwise every Nth row: `share_of`), `where`, conversion, length filters, bad rows
(an error naming the row, or skipped and counted), then num_samples / data.max_samples. Then the mixture:
weighted (`interleave_datasets`, every stream repeating so that none runs out) or concatenated (repeating
as a whole), a window shuffle, the stage's processor, bad examples, and the stage's regroup (pt blocks).

Every step is a `datasets` map or filter, so the stream's `state_dict()` covers the whole chain and a
resumed run continues where it stopped (stages/streaming.py saves it with each checkpoint).

What the pipeline reads, filters, skips and truncates is counted in StreamCounts as the rows go by; the
counts include the read-ahead of the shuffle window, which a resumed run reads (and counts) once more.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ftkit.config.recipe import Recipe
from ftkit.config.sections.data import DatasetRef
from ftkit.data.cache import file_digest
from ftkit.data.formats import EXAMPLE_FIELDS
from ftkit.data.loaders import load_rows, local_files
from ftkit.data.pipeline import (
    BuiltData,
    DataReport,
    DatasetReport,
    SplitReport,
    bad_row_error,
    check_columns,
    convert_batch,
    input_fingerprints,
    normalize,
    process_split,
    read_sources,
)
from ftkit.data.processors import ProcessOptions
from ftkit.data.registry import DatasetSpec, Registry
from ftkit.data.stream_counts import StreamCounts
from ftkit.data.tokenize import MaskOptions
from ftkit.data.transforms import matches
from ftkit.errors import UserError
from ftkit.stages import check_dataset, stage_for

DEFAULT_SHUFFLE_BUFFER = 10_000
BATCH_ROWS = 1000
"""Rows per conversion / tokenization / regroup batch (datasets' default)."""


@dataclass(frozen=True)
class Share:
    """Which part of every stream this process reads."""

    rank: int = 0
    world_size: int = 1


def check_streamable(spec: DatasetSpec) -> None:
    """Registry options that need a dataset known in full are refused for a stream."""
    if spec.dedup:
        raise UserError(
            f"dataset {spec.name!r}: dedup compares every row with all the others, which a stream cannot; "
            "deduplicate the files beforehand, or train without data.streaming"
        )


# ------------------------------------------------------------------ per dataset


def _convert_rows(
    batch: dict[str, list],
    indices: list[int],
    spec: DatasetSpec,
    counts: StreamCounts,
    on_bad_rows: str,
    share: Share,
) -> dict[str, list]:
    """`where`, conversion and length filters over a batch of raw rows; only usable examples come out."""
    counts.add("read", spec.name, count=len(indices))
    if spec.where:
        keep = [i for i in range(len(indices)) if matches({c: v[i] for c, v in batch.items()}, spec.where)]
        if len(keep) < len(indices):
            counts.add("filtered", spec.name, "where", len(indices) - len(keep))
        batch = {column: [values[i] for i in keep] for column, values in batch.items()}
        indices = [indices[i] for i in keep]
    converted = convert_batch({**batch, "_row": indices}, spec)
    keep = []
    for position, (problem, dropped) in enumerate(
        zip(converted["_problem"], converted["_filter"], strict=True)
    ):
        if problem is not None:
            if on_bad_rows == "error":
                raise _stream_bad_row(spec, converted["_row"][position], problem, share)
            counts.add("skipped", spec.name, problem)
        elif dropped is not None:
            counts.add("filtered", spec.name, dropped)
        else:
            keep.append(position)
    names = (*EXAMPLE_FIELDS, "_dataset", "_row")
    return {name: [converted[name][i] for i in keep] for name in names}


def _stream_bad_row(spec: DatasetSpec, row: int, problem: str, share: Share) -> UserError:
    if share.world_size == 1:
        return bad_row_error(spec.name, spec.source, row, problem)
    return UserError(
        f"dataset {spec.name!r} ({spec.source}), row {row + 1} of the rows process {share.rank} of "
        f"{share.world_size} reads: {problem}. Fix the row, or set data.on_bad_rows: skip to skip such rows "
        "and count them."
    )


def _columns(stream: Any, spec: DatasetSpec) -> list[str]:
    if stream.column_names is not None:
        return list(stream.column_names)
    try:
        first = next(iter(stream.take(1)))
    except StopIteration:
        raise UserError(f"dataset {spec.name!r} ({spec.source}) has no rows") from None
    return list(first)


def _keep_share(_: dict[str, Any], index: int, rank: int, world_size: int) -> bool:
    return index % world_size == rank


def share_of(rows: Any, share: Share) -> Any:
    """This process's rows of a stream: whole files when their number divides evenly between the
    processes, otherwise every Nth row.

    The rule is `split_dataset_by_node`'s; it is applied here, on the rows as read, because
    split_dataset_by_node applies its split after every map of the chain, so each process would convert
    and tokenize every row only to keep one in N."""
    if share.world_size == 1:
        return rows
    if rows.num_shards % share.world_size == 0:
        return rows.shard(num_shards=share.world_size, index=share.rank)
    return rows.filter(
        _keep_share, with_indices=True, fn_kwargs={"rank": share.rank, "world_size": share.world_size}
    )


def dataset_stream(
    ref: DatasetRef, registry: Registry, recipe: Recipe, counts: StreamCounts, share: Share
) -> Any:
    spec = registry.get(ref.name)
    check_dataset(spec, stage_for(recipe))
    check_streamable(spec)
    rows = load_rows(spec, registry.dataset_dir, streaming=True)
    columns = _columns(rows, spec)
    check_columns(spec, columns)
    examples = share_of(rows, share).map(
        _convert_rows,
        batched=True,
        batch_size=BATCH_ROWS,
        with_indices=True,
        remove_columns=columns,
        fn_kwargs={"spec": spec, "counts": counts, "on_bad_rows": recipe.data.on_bad_rows, "share": share},
        features=_example_features(),
    )
    limits = [n for n in (spec.num_samples, recipe.data.max_samples) if n is not None]
    if limits:
        # The limit is the dataset's, shared out: N processes together use it once.
        limit = min(limits)
        examples = examples.take(limit // share.world_size + (share.rank < limit % share.world_size))
    if next(iter(examples.take(1)), None) is None:
        whose = f" to process {share.rank} of {share.world_size}" if share.world_size > 1 else ""
        raise UserError(
            f"dataset {spec.name!r} ({spec.source}) gives no usable example{whose}: rows read {counts.read}, "
            f"filtered {counts.filtered}, skipped {counts.skipped}"
            + (f", limit {min(limits)}" if limits else "")
            + ". Check its filters and rows"
            + (", or train with fewer processes" if share.world_size > 1 else "")
        )
    return examples


def check_shares(recipe: Recipe, world_size: int) -> None:
    """Every process's share of every training dataset holds a usable example (read up to the first)."""
    registry = Registry(recipe.data.dataset_dir)
    for rank in range(world_size):
        for ref in recipe.data.train:
            dataset_stream(ref, registry, recipe, StreamCounts(), Share(rank, world_size))


# ------------------------------------------------------------------ the whole stream


def _shuffle_window(batch: dict[str, list], indices: list[int], seed: int) -> dict[str, list]:
    """One window of examples in an order fixed by the seed and the window's position in the stream."""
    import numpy as np

    order = np.random.default_rng([seed, indices[0]]).permutation(len(indices))
    return {column: [values[i] for i in order] for column, values in batch.items()}


def _check_processed(
    batch: dict[str, list],
    columns: tuple[str, ...],
    counts: StreamCounts,
    on_bad_rows: str,
    specs: dict[str, DatasetSpec],
    share: Share,
) -> dict[str, list]:
    """Bad examples are errors or counted skips; truncations and examples per dataset are counted."""
    keep = []
    for position, problem in enumerate(batch["_problem"]):
        dataset = batch["_dataset"][position]
        if problem is None:
            keep.append(position)
            counts.add("examples", dataset)
            counts.truncated += bool(batch["_truncated"][position])
        elif on_bad_rows == "error":
            raise _stream_bad_row(specs[dataset], batch["_row"][position], problem, share)
        else:
            counts.add("skipped", dataset, problem)
    return {column: [batch[column][i] for i in keep] for column in columns}


def _features(columns: tuple[str, ...]) -> Any:
    from datasets import Features, List, Value

    return Features({column: List(Value("int64")) for column in columns})


def _example_features() -> Any:
    """The normalized example's columns (data/formats/base.py), declared so that mixing streams never
    reads ahead to guess them."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features(
        {
            **{name: text for name in EXAMPLE_FIELDS if name not in ("messages", "feedback")},
            "feedback": Value("bool"),
            "messages": List({"role": text, "content": text}),
            "_dataset": text,
            "_row": Value("int64"),
        }
    )


def open_stream(
    recipe: Recipe, tokenizer: Any, template: Any, counts: StreamCounts, share: Share = Share()
) -> Any:
    """The stage's training rows as a `datasets.IterableDataset` that never runs out (for this process)."""
    import datasets

    data, stage = recipe.data, stage_for(recipe)
    registry = Registry(data.dataset_dir)
    refs = data.train
    parts = [dataset_stream(ref, registry, recipe, counts, share) for ref in refs]
    seed = recipe.train.seed
    if refs[0].weight is not None:
        total = sum(ref.weight or 0 for ref in refs)
        mixed = datasets.interleave_datasets(
            [part.repeat(None) for part in parts],
            probabilities=[(ref.weight or 0) / total for ref in refs],
            seed=seed,
        )
    else:
        mixed = (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)).repeat(None)
    window = data.shuffle_buffer or DEFAULT_SHUFFLE_BUFFER
    if window > 1:
        mixed = mixed.map(
            _shuffle_window, batched=True, batch_size=window, with_indices=True, fn_kwargs={"seed": seed}
        )
    options = ProcessOptions(
        MaskOptions(data.max_length, data.train_on_prompt, data.mask_history), data.system, data.template_vars
    )
    tokenized = mixed.map(
        stage.process,
        batched=True,
        batch_size=BATCH_ROWS,
        fn_kwargs={"tokenizer": tokenizer, "template": template, "options": options},
        remove_columns=list(EXAMPLE_FIELDS),
    )
    columns = ("input_ids",) if stage.regroup is not None else stage.shape.columns
    checked = tokenized.map(
        _check_processed,
        batched=True,
        batch_size=BATCH_ROWS,
        remove_columns=["_problem", "_truncated", "_dataset", "_row"],
        fn_kwargs={
            "columns": columns,
            "counts": counts,
            "on_bad_rows": data.on_bad_rows,
            "specs": {ref.name: registry.get(ref.name) for ref in refs},
            "share": share,
        },
        features=_features(columns),
    )
    if stage.regroup is None:
        return checked
    return checked.map(
        stage.regroup,
        batched=True,
        batch_size=BATCH_ROWS,
        fn_kwargs={"max_length": data.max_length},
        remove_columns=list(columns),
        features=_features(stage.shape.columns),
    )


# ------------------------------------------------------------------ with the eval split and the report


def _fingerprints(recipe: Recipe, registry: Registry) -> dict[str, str]:
    """What identifies each training dataset's data without reading a stream to its end: local files'
    contents, a hub dataset's id, subset, split and revision."""
    found = {}
    for ref in recipe.data.train:
        spec = registry.get(ref.name)
        if spec.file_name:
            _, files = local_files(spec, registry.dataset_dir)
            found[ref.name] = ",".join(file_digest(f) for f in files)
        else:
            found[ref.name] = f"{spec.source}:{spec.folder}:{spec.split}:{spec.revision}"
    return found


def build_streamed_data(
    recipe: Recipe, tokenizer: Any, template: Any, share: Share
) -> tuple[BuiltData, StreamCounts]:
    """The training stream, the eval split (read whole, as without streaming) and the report so far."""
    registry = Registry(recipe.data.dataset_dir)
    counts = StreamCounts()
    train = open_stream(recipe, tokenizer, template, counts, share)
    report = DataReport(
        datasets=[DatasetReport(ref.name, registry.get(ref.name).source) for ref in recipe.data.train],
        inputs=input_fingerprints(recipe, registry, _fingerprints(recipe, registry), tokenizer, template),
        cache={"streaming": True},
    )
    evaluation = None
    if recipe.data.eval:
        rows, _ = read_sources(recipe, registry, with_train=False)
        _, mixed = normalize(recipe, registry, rows, report, with_train=False)
        sources = {name: registry.get(name).source for name in rows}
        evaluation, report.splits["eval"] = process_split(mixed, "eval", tokenizer, template, recipe, sources)
    report.splits["train"] = SplitReport()
    return BuiltData(train, evaluation, report), counts


def record_counts(report: DataReport, counts: StreamCounts, refs: list[DatasetRef]) -> None:
    """Put the streamed counts (all processes') into the run record's data report (its first dataset
    reports are the training datasets', `refs`)."""
    weighted = refs[0].weight is not None
    for dataset in report.datasets[: len(refs)]:
        dataset.rows = counts.read.get(dataset.name, 0)
        dataset.filtered = counts.filtered.get(dataset.name, {})
        dataset.skipped = counts.skipped.get(dataset.name, {})
        dataset.examples = counts.examples.get(dataset.name, 0)
        dataset.used = dataset.examples if weighted else None
    split = report.splits["train"]
    split.examples = counts.trained["sequences"]
    split.tokens = counts.trained["tokens"]
    split.trained_tokens = counts.trained["trained_tokens"]
    split.truncated = counts.truncated
    skipped: Counter = Counter()
    for reasons in counts.skipped.values():
        skipped.update(reasons)
    split.skipped = dict(skipped)
