"""`ftkit datasets`, `ftkit data preview` and `ftkit data stats`: what the registry holds, and what the
model will see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftkit.config import Recipe
from ftkit.data.formats import check_entry
from ftkit.data.registry import Registry
from ftkit.errors import UserError
from ftkit.stages import stage_for


def list_datasets(dataset_dir: str | Path) -> str:
    """One line per registry entry: name, format, source; entries that do not validate say why."""
    registry = Registry(dataset_dir)
    rows = []
    for name in registry.names():
        try:
            spec = registry.get(name)
            check_entry(spec)
            kind = spec.formatting + (" ranking" if spec.ranking else "")
            rows.append((name, kind, spec.source))
        except UserError as exc:
            rows.append((name, "INVALID", str(exc).split(": ", 1)[-1]))
    if not rows:
        return f"{registry.path}: no entries"
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{registry.path}: {len(rows)} entries"]
    lines += [f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {source}" for name, kind, source in rows]
    return "\n".join(lines)


def build(recipe: Recipe) -> Any:
    """The stage's processed data for the recipe (from the cache when unchanged), and the tokenizer."""
    from ftkit.data.pipeline import build_data
    from ftkit.models.loader import load_tokenizer_and_template

    bundle = load_tokenizer_and_template(recipe.model)
    return build_data(recipe, bundle.tokenizer, bundle.template), bundle.tokenizer


def _origin(example: dict[str, Any]) -> dict[str, Any]:
    """Where the example came from: its dataset and row (1-based)."""
    row = example.get("_row")
    return {"dataset": example.get("_dataset"), "row": None if row is None else row + 1}


def _stream_head(recipe: Recipe, count: int) -> tuple[list[dict[str, Any]], Any]:
    """The first examples of the training stream (data.streaming), read no further than needed."""
    from itertools import islice

    from ftkit.data.stream import open_stream
    from ftkit.data.stream_counts import StreamCounts
    from ftkit.models.loader import load_tokenizer_and_template

    bundle = load_tokenizer_and_template(recipe.model)
    stream = open_stream(recipe, bundle.tokenizer, bundle.template, StreamCounts())
    return list(islice(stream, count)), bundle.tokenizer


def preview(recipe: Recipe, count: int, as_json: bool, color: bool, split: str = "train") -> str:
    """The first processed examples as the stage's trainer sees them (the stage's data shape shows them)."""
    shape = stage_for(recipe).shape
    if recipe.data.streaming and split == "train":
        examples, tokenizer = _stream_head(recipe, count)
    else:
        data, tokenizer = build(recipe)
        dataset = data.train if split == "train" else data.eval
        if dataset is None:
            raise UserError("the recipe has no eval data (data.eval or data.val_size)")
        examples = [dataset[i] for i in range(min(count, len(dataset)))]
    if as_json:
        return "\n".join(
            json.dumps({**_origin(e), **shape.record(e, tokenizer)}, ensure_ascii=False) for e in examples
        )
    blocks = []
    for index, example in enumerate(examples, start=1):
        origin = _origin(example)
        where = f" ({origin['dataset']} row {origin['row']})" if origin["dataset"] else ""
        note, body = shape.show(example, tokenizer, color)
        blocks.append(f"--- example {index}{where}{note}\n{body}")
    return "\n".join(blocks)


def stats(recipe: Recipe, as_json: bool) -> str:
    if recipe.data.streaming:
        raise UserError(
            "data stats reads every example, which a stream is meant to avoid: look at the first ones with "
            "`ftkit data preview`, or measure a sample with data.streaming=false data.max_samples=N; a "
            "streamed run counts what it reads and trains in its run.json"
        )
    data, _ = build(recipe)
    report = data.report.as_dict()
    if as_json:
        return json.dumps(report, indent=2)
    lines = []
    for name, split in report["splits"].items():
        skipped = sum(split["skipped"].values())
        lines.append(
            f"{name}: {split['examples']:,} examples, {split['tokens']:,} tokens ({split['trained_tokens']:,} trained), "
            f"{split['truncated']:,} truncated, {skipped:,} skipped"
        )
        if split["lengths"]:
            lines.append(
                "  tokens per example: " + ", ".join(f"{k} {v:,}" for k, v in split["lengths"].items())
            )
    for dataset in report["datasets"]:
        used = f", {dataset['used']:,} used in the mixture" if dataset["used"] is not None else ""
        filtered = ", ".join(f"{k} {v:,}" for k, v in dataset["filtered"].items()) or "none"
        skipped = ", ".join(f"{k!r} {v:,}" for k, v in dataset["skipped"].items()) or "none"
        lines.append(
            f"  {dataset['name']} ({dataset['source']}): {dataset['rows']:,} rows -> {dataset['examples']:,} examples"
            f"{used}; filtered: {filtered}; skipped: {skipped}"
        )
    cache = report["cache"]
    lines.append(f"cache: {'hit' if cache.get('hit') else 'written'} {cache.get('path', '(disabled)')}")
    return "\n".join(lines)
