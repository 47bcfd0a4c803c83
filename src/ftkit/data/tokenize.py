"""Conversations to token ids and labels.

The rendered conversation is tokenized in one call (so merges across turn boundaries happen exactly
as at inference), and labels are derived from character offsets: a token is trained when it overlaps
a trained span of the text. Everything else gets -100.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftkit.errors import UserError
from ftkit.templates import ChatTemplate, Segment, token_variables

__all__ = ["IGNORE_INDEX", "Encoded", "MaskOptions", "encode_conversations", "token_variables"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskOptions:
    max_length: int
    train_on_prompt: bool = False
    mask_history: bool = False


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    """The example was longer than max_length and lost its end."""
    problem: str | None = None
    """Why the example cannot be trained on (then ids and labels are empty)."""


def trained_spans(segments: Sequence[Segment], options: MaskOptions) -> list[tuple[int, int]]:
    """Character ranges [start, end) of the rendered text that are trained."""
    last_turn = max((s.turn for s in segments if s.completion), default=-1)
    spans: list[tuple[int, int]] = []
    position = 0
    for segment in segments:
        end = position + len(segment.text)
        trained = options.train_on_prompt or (
            segment.completion and (not options.mask_history or segment.turn == last_turn)
        )
        if trained and end > position:
            if spans and spans[-1][1] == position:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((position, end))
        position = end
    return spans


def _labels(
    ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for index, (start, end) in enumerate(offsets):
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        # A zero-width token (some byte-fallback pieces) counts as covering the character it starts at.
        if start < span_end and max(end, start + 1) > span_start:
            labels[index] = ids[index]
    return labels


def _render(template: ChatTemplate, example: Mapping[str, Any], values: Mapping[str, str]) -> list[Segment]:
    tools = example.get("tools")
    definitions = json.loads(tools) if isinstance(tools, str) else tools
    return template.render(
        example["messages"], example.get("system"), variables=values, tools=definitions or None
    )


def encode_conversations(
    tokenizer: Any,
    template: ChatTemplate,
    examples: Sequence[Mapping[str, Any]],
    options: MaskOptions,
    variables: Mapping[str, str] | None = None,
) -> list[Encoded]:
    """Encode normalized examples ({system, messages}) into ids and labels, in one tokenizer call."""
    if not examples:
        return []
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("ftkit needs a fast tokenizer (a tokenizer.json); this model only ships a slow one")
    values = {**token_variables(tokenizer), **(variables or {})}
    rendered = [_render(template, ex, {**values, **(ex.get("variables") or {})}) for ex in examples]
    texts = ["".join(s.text for s in segments) for segments in rendered]
    batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    results = []
    for segments, ids, offsets in zip(rendered, batch["input_ids"], batch["offset_mapping"], strict=True):
        labels = _labels(ids, offsets, trained_spans(segments, options))
        if all(label == IGNORE_INDEX for label in labels):
            results.append(Encoded([], [], False, "no assistant content to train on"))
            continue
        truncated = len(ids) > options.max_length
        if truncated:
            ids, labels = ids[: options.max_length], labels[: options.max_length]
            if all(label == IGNORE_INDEX for label in labels):
                problem = f"the prompt alone fills data.max_length ({options.max_length} tokens)"
                results.append(Encoded([], [], True, problem))
                continue
        results.append(Encoded(list(ids), labels, truncated))
    return results
