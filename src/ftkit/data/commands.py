"""`ftkit datasets`, `ftkit data preview` and `ftkit data stats`: what the registry holds, and what the
model will see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftkit.config import Recipe
from ftkit.data.formats import check_entry
from ftkit.data.registry import Registry
from ftkit.data.tokenize import IGNORE_INDEX
from ftkit.errors import UserError

GREEN, DIM, RESET = "\033[32m", "\033[2m", "\033[0m"


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

    bundle = load_tokenizer_and_template(recipe.model, recipe.stage)
    return build_data(recipe, bundle.tokenizer, bundle.template), bundle.tokenizer


def _spans(tokenizer: Any, input_ids: list[int], labels: list[int], color: bool) -> str:
    """The example's text with trained spans green and masked spans dim (or [[...]] around trained text)."""
    pieces, group, trained = [], [], None
    for token, label in zip(input_ids, labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            pieces.append((trained, tokenizer.decode(group)))
            group = []
        group.append(token)
        trained = is_trained
    if group:
        pieces.append((bool(trained), tokenizer.decode(group)))
    if color:
        return "".join(f"{GREEN if t else DIM}{text}{RESET}" for t, text in pieces)
    return "".join(f"[[{text}]]" if t else text for t, text in pieces)


def _record(example: dict[str, Any], tokenizer: Any, stage: str) -> dict[str, Any]:
    record = {key: example[key] for key in ("_dataset", "_row") if key in example}
    record = {"dataset": record.get("_dataset"), "row": None if "_row" not in record else record["_row"] + 1}
    if stage == "dpo":
        return {
            **record,
            "prompt": tokenizer.decode(example["prompt_ids"]),
            "chosen": tokenizer.decode(example["chosen_ids"]),
            "rejected": tokenizer.decode(example["rejected_ids"]),
            "prompt_ids": example["prompt_ids"],
            "chosen_ids": example["chosen_ids"],
            "rejected_ids": example["rejected_ids"],
        }
    if stage == "grpo":
        return {**record, "prompt": example["prompt"], "reference": example["reference"]}
    return {
        **record,
        "text": tokenizer.decode(example["input_ids"]),
        "input_ids": example["input_ids"],
        "labels": example["labels"],
    }


def preview(recipe: Recipe, count: int, as_json: bool, color: bool, split: str = "train") -> str:
    data, tokenizer = build(recipe)
    dataset = data.train if split == "train" else data.eval
    if dataset is None:
        raise UserError("the recipe has no eval data (data.eval or data.val_size)")
    examples = [dataset[i] for i in range(min(count, len(dataset)))]
    if as_json:
        return "\n".join(
            json.dumps(_record(e, tokenizer, recipe.stage), ensure_ascii=False) for e in examples
        )
    blocks = []
    for index, example in enumerate(examples, start=1):
        record = _record(example, tokenizer, recipe.stage)
        origin = f" ({record['dataset']} row {record['row']})" if record.get("dataset") else ""
        header = f"--- example {index}{origin}"
        if recipe.stage in ("sft", "pt"):
            body = _spans(tokenizer, example["input_ids"], example["labels"], color)
            legend = "trained text in green" if color else "trained text in [[...]]"
            blocks.append(f"{header}, {len(example['input_ids'])} tokens; {legend}\n{body}")
        elif recipe.stage == "dpo":
            blocks.append(
                f"{header}\nPROMPT: {record['prompt']}\nCHOSEN: {record['chosen']}\nREJECTED: {record['rejected']}"
            )
        else:
            blocks.append(f"{header}\nPROMPT: {record['prompt']}\nREFERENCE: {record['reference']}")
    return "\n".join(blocks)


def stats(recipe: Recipe, as_json: bool) -> str:
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
