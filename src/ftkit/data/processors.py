"""Processors: normalized examples in, what a stage's trainer consumes out (each stage declares its own,
stages/<stage>.py).

Every processor works on a batch (datasets' batched map) and returns, besides its columns, `_problem`
(why an example cannot be used, or None) and `_truncated`. The pipeline turns problems into errors or
counted skips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ftkit.data.tokenize import IGNORE_INDEX, MaskOptions, encode_conversations
from ftkit.templates import ChatTemplate, TemplateError, token_variables

Batch = dict[str, list]


@dataclass(frozen=True)
class ProcessOptions:
    masks: MaskOptions
    system: str | None = None
    """data.system: the system prompt of examples that have none."""
    variables: dict[str, str] | None = None
    """data.template_vars: chat template variables of every example (a row's own win)."""


def conversations(batch: Batch, system: str | None) -> list[dict[str, Any]]:
    variables = batch.get("variables") or [None] * len(batch["messages"])
    return [
        {
            "system": row_system if row_system is not None else system,
            "messages": messages,
            "tools": tools,
            "variables": json.loads(row_variables) if row_variables else None,
        }
        for row_system, messages, tools, row_variables in zip(
            batch["system"], batch["messages"], batch["tools"], variables, strict=True
        )
    ]


def _encode_each(
    tokenizer: Any, template: ChatTemplate, examples: list[dict], options: ProcessOptions
) -> list:
    """encode_conversations, falling back to one by one so a template error names its example."""
    try:
        return encode_conversations(tokenizer, template, examples, options.masks, options.variables)
    except TemplateError:
        results = []
        for item in examples:
            try:
                results += encode_conversations(tokenizer, template, [item], options.masks, options.variables)
            except TemplateError as exc:
                results.append(str(exc))
        return results


def process_sft(batch: Batch, tokenizer: Any, template: ChatTemplate, options: ProcessOptions) -> Batch:
    examples = conversations(batch, options.system)
    out: Batch = {"input_ids": [], "labels": [], "_truncated": [], "_problem": []}
    ready, positions = [], []
    for position, item in enumerate(examples):
        messages = item["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            out["_problem"].append(
                "no assistant answer to train on (does the entry name its response column?)"
            )
        else:
            out["_problem"].append(None)
            ready.append(item)
            positions.append(position)
        out["input_ids"].append([])
        out["labels"].append([])
        out["_truncated"].append(False)
    for position, encoded in zip(positions, _encode_each(tokenizer, template, ready, options), strict=True):
        if isinstance(encoded, str):
            out["_problem"][position] = encoded
            continue
        out["_problem"][position] = encoded.problem
        out["input_ids"][position], out["labels"][position] = encoded.input_ids, encoded.labels
        out["_truncated"][position] = encoded.truncated
    return out


def process_dpo(batch: Batch, tokenizer: Any, template: ChatTemplate, options: ProcessOptions) -> Batch:
    """prompt_ids / chosen_ids / rejected_ids, split where the two full sequences stop agreeing, so that
    both are exactly the one-call tokenization of prompt + answer."""
    out: Batch = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": [], "_truncated": [], "_problem": []}
    masks = MaskOptions(options.masks.max_length, train_on_prompt=False, mask_history=True)
    for item, chosen, rejected in zip(
        conversations(batch, options.system), batch["chosen"], batch["rejected"], strict=True
    ):
        problem, ids = None, ([], [], [])
        if chosen is None or rejected is None:
            problem = "not preference data: chosen and rejected answers are needed (ranking: true)"
        elif not item["messages"] or item["messages"][-1]["role"] == "assistant":
            problem = "the conversation of a preference pair must end with the user's message"
        else:
            pair = [
                {**item, "messages": [*item["messages"], {"role": "assistant", "content": answer}]}
                for answer in (chosen, rejected)
            ]
            encoded = _encode_each(tokenizer, template, pair, ProcessOptions(masks, None, options.variables))
            problem = next(
                (e if isinstance(e, str) else e.problem for e in encoded if isinstance(e, str) or e.problem),
                None,
            )
            if problem is None:
                ids = _split_pair(encoded[0], encoded[1])
                out["_truncated"].append(encoded[0].truncated or encoded[1].truncated)
        if problem is not None:
            out["_truncated"].append(False)
        for column, value in zip(("prompt_ids", "chosen_ids", "rejected_ids"), ids, strict=True):
            out[column].append(value)
        out["_problem"].append(problem)
    return out


def process_kto(batch: Batch, tokenizer: Any, template: ChatTemplate, options: ProcessOptions) -> Batch:
    """prompt_ids / completion_ids / label: each conversation tokenized once and split where its last answer
    starts; the answer runs to its last trained token (its end-of-turn marker)."""
    out: Batch = {"prompt_ids": [], "completion_ids": [], "label": [], "_truncated": [], "_problem": []}
    masks = MaskOptions(options.masks.max_length, train_on_prompt=False, mask_history=True)
    ready, positions = [], []
    for position, (item, feedback) in enumerate(
        zip(conversations(batch, options.system), batch["feedback"], strict=True)
    ):
        messages = item["messages"]
        problem = None
        if feedback is None:
            problem = "no feedback label: the entry needs columns.kto_tag (desirable answer or not)"
        elif not messages or messages[-1]["role"] != "assistant":
            problem = "no assistant answer to judge (does the entry name its response column?)"
        else:
            ready.append(item)
            positions.append(position)
        out["_problem"].append(problem)
        out["prompt_ids"].append([])
        out["completion_ids"].append([])
        out["label"].append(bool(feedback))
        out["_truncated"].append(False)
    encoded_all = _encode_each(tokenizer, template, ready, ProcessOptions(masks, None, options.variables))
    for position, encoded in zip(positions, encoded_all, strict=True):
        if isinstance(encoded, str) or encoded.problem:
            out["_problem"][position] = encoded if isinstance(encoded, str) else encoded.problem
            continue
        trained = _trained(encoded.labels)
        out["prompt_ids"][position] = encoded.input_ids[: trained[0]]
        out["completion_ids"][position] = encoded.input_ids[trained[0] : trained[-1] + 1]
        out["_truncated"][position] = encoded.truncated
    return out


def _split_pair(chosen: Any, rejected: Any) -> tuple[list[int], list[int], list[int]]:
    """Shared prompt ids, then each answer up to its last trained token (its end-of-turn marker)."""
    first = min(_trained(chosen.labels)[0], _trained(rejected.labels)[0])
    shared = 0
    while shared < first and chosen.input_ids[shared] == rejected.input_ids[shared]:
        shared += 1
    chosen_end, rejected_end = _trained(chosen.labels)[-1] + 1, _trained(rejected.labels)[-1] + 1
    return (
        chosen.input_ids[:shared],
        chosen.input_ids[shared:chosen_end],
        rejected.input_ids[shared:rejected_end],
    )


def _trained(labels: list[int]) -> list[int]:
    return [i for i, label in enumerate(labels) if label != IGNORE_INDEX]


def process_pt(batch: Batch, tokenizer: Any, template: ChatTemplate | None, options: ProcessOptions) -> Batch:
    """Documents to tokens, each ending with EOS; chunking into max_length blocks happens afterwards."""
    texts, problems = [], []
    for text, system, messages in zip(batch["text"], batch["system"], batch["messages"], strict=True):
        if text is None:  # a conversation used as a document: its turns, one per paragraph
            parts = ([system] if system else []) + [m["content"] for m in messages]
            text = "\n\n".join(parts)
        texts.append(text)
        problems.append(None if text.strip() else "empty document")
    eos = tokenizer.eos_token or ""
    encoded = tokenizer([t + eos for t in texts], add_special_tokens=False)["input_ids"]
    return {"input_ids": encoded, "_truncated": [False] * len(texts), "_problem": problems}


def process_grpo(batch: Batch, tokenizer: Any, template: ChatTemplate, options: ProcessOptions) -> Batch:
    """The prompt rendered with the generation prompt, and the reference answer for the rewards."""
    out: Batch = {"prompt": [], "reference": [], "_truncated": [], "_problem": []}
    values = {**token_variables(tokenizer), **(options.variables or {})}
    # TRL tokenizes text prompts with the tokenizer's special tokens: a tokenizer that adds BOS itself
    # must not get the template's BOS too.
    bos = tokenizer.bos_token if adds_bos(tokenizer) else None
    for item in conversations(batch, options.system):
        messages = item["messages"]
        item_values = {**values, **(item["variables"] or {})}
        reference = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None
        prompt_messages = messages[:-1] if reference is not None else messages
        problem, prompt = None, ""
        try:
            prompt = template.render_text(
                prompt_messages, item["system"], add_generation_prompt=True, variables=item_values
            )
        except TemplateError as exc:
            problem = str(exc)
        if bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]
        out["prompt"].append(prompt)
        out["reference"].append(reference)
        out["_truncated"].append(False)
        out["_problem"].append(problem)
    return out


def adds_bos(tokenizer: Any) -> bool:
    bos_id = tokenizer.bos_token_id
    return bos_id is not None and tokenizer("a")["input_ids"][:1] == [bos_id]


def chunk_blocks(batch: Batch, max_length: int) -> Batch:
    """Concatenate token lists and cut them into blocks of max_length; the batch's tail is its own block."""
    stream = [token for ids in batch["input_ids"] for token in ids]
    blocks = [stream[start : start + max_length] for start in range(0, len(stream), max_length)]
    return {"input_ids": blocks, "labels": blocks}
