"""Dataset-level transforms on normalized examples: row filters, length filters, deduplication, mixtures,
hold-out splits. Each returns what it removed, so the pipeline can count it."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from ftkit.config.sections.data import DatasetRef
from ftkit.data.registry import DatasetSpec
from ftkit.errors import UserError


def matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    """The row's columns equal the wanted values (or are in the wanted lists)."""
    for column, wanted in where.items():
        value = row.get(column)
        if isinstance(wanted, list) and value not in wanted:
            return False
        if not isinstance(wanted, list) and value != wanted:
            return False
    return True


def _contents(example: dict[str, Any]) -> list[str]:
    parts = [example.get("system") or "", example.get("text") or ""]
    parts += [m["content"] for m in example.get("messages") or []]
    parts += [example.get("chosen") or "", example.get("rejected") or ""]
    return [p for p in parts if p]


def length_problem(example: dict[str, Any], spec: DatasetSpec) -> str | None:
    """Why the example fails the entry's min_chars / max_chars, or None."""
    contents = _contents(example)
    if spec.min_chars and any(len(c.strip()) < spec.min_chars for c in contents):
        return f"shorter than min_chars={spec.min_chars}"
    if spec.max_chars and sum(len(c) for c in contents) > spec.max_chars:
        return f"longer than max_chars={spec.max_chars}"
    return None


def example_hash(example: dict[str, Any]) -> str:
    """Exact-content hash of a normalized example (what dedup compares)."""
    keys = ("system", "messages", "chosen", "rejected", "text", "tools", "variables")
    payload = json.dumps([example.get(k) for k in keys], ensure_ascii=False, sort_keys=True)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def prompt_hash(example: dict[str, Any]) -> str:
    """What a model is asked in an example: its system prompt and messages before the answer (or its text)."""
    messages = example.get("messages") or []
    asked = messages[:-1] if messages and messages[-1].get("role") == "assistant" else messages
    payload = json.dumps(
        [example.get("system"), asked, example.get("text")], ensure_ascii=False, sort_keys=True
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def shared_prompts(train: Any, evaluation: Any) -> int:
    """How many evaluation examples ask what a training example asks (their scores are not held-out)."""
    seen = {prompt_hash(example) for example in train}
    return sum(prompt_hash(example) in seen for example in evaluation)


def first_occurrences(hashes: list[str]) -> list[int]:
    """Indices that keep the first example of every hash."""
    seen: set[str] = set()
    keep = []
    for index, value in enumerate(hashes):
        if value not in seen:
            seen.add(value)
            keep.append(index)
    return keep


def mix(parts: list[Any], refs: list[DatasetRef], seed: int, stop: str) -> tuple[Any, Counter]:
    """Concatenate, or interleave with the refs' weights (seeded); returns the mixture and the examples
    each dataset contributed."""
    import datasets

    if len(parts) == 1:
        mixed = parts[0]
    elif refs[0].weight is None:
        mixed = datasets.concatenate_datasets(parts)
    else:
        total = sum(ref.weight or 0 for ref in refs)
        mixed = datasets.interleave_datasets(
            parts,
            probabilities=[(ref.weight or 0) / total for ref in refs],
            seed=seed,
            stopping_strategy=stop,
        )
    return mixed, Counter(mixed["_dataset"])


def hold_out(examples: Any, size: float, seed: int) -> tuple[Any, Any]:
    """Split data.val_size (a fraction, or a number of rows) off the training examples, seeded."""
    count = int(size) if size >= 1 else round(size * len(examples))
    if not 1 <= count < len(examples):
        raise UserError(
            f"data.val_size={size:g} would hold out {count} of {len(examples)} examples; "
            "it must leave at least one example on each side"
        )
    split = examples.train_test_split(test_size=count, seed=seed)
    return split["train"], split["test"]
