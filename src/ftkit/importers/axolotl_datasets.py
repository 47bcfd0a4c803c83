"""Axolotl's inline `datasets:` entries as ftkit registry entries.

Axolotl declares each dataset in the config: a path (hub id or local file), a `type` naming the prompt
strategy, and that strategy's field names. ftkit keeps datasets in a registry, so each entry becomes one
registry entry whose formatting and columns read the same fields. Each prompt strategy is declared once
in STRATEGIES; a strategy ftkit has no format for is refused with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.importers.rules import Conversion

Entry = dict[str, Any]

SOURCE_KEYS = {"path", "type", "ds_type", "data_files", "name", "split", "revision", "data_dir"}
"""Where the rows come from; the other keys of a dataset entry belong to its prompt strategy."""


def _alpaca(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    return {"formatting": "alpaca"}


def _custom(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    """A user-defined strategy (type given as a mapping): its field_* columns; its format strings are
    replaced by the chat template."""
    fields = spec["type"]
    columns = {
        "prompt": fields.get("field_instruction", "instruction"),
        "query": fields.get("field_input", "input"),
        "response": fields.get("field_output", "output"),
    }
    if "field_system" in fields:
        columns["system"] = fields["field_system"]
    if any(key in fields for key in ("format", "no_input_format", "system_format")):
        out.note(
            where,
            "its format strings are not used: ftkit renders the instruction and input with model.template",
        )
    return {"formatting": "alpaca", "columns": columns}


def _messages(spec: dict[str, Any], out: Conversion, where: str, sharegpt: bool = False) -> Entry:
    mappings = spec.get("message_property_mappings") or {}
    role = mappings.get("role", spec.get("message_field_role"))
    content = mappings.get("content", spec.get("message_field_content"))
    default_column = "conversations" if sharegpt else "messages"
    entry: Entry = {
        "formatting": "sharegpt" if sharegpt else "openai",
        "columns": {"messages": spec.get("field_messages", default_column)},
    }
    tags = {}
    if role:
        tags["role_tag"] = role
    if content:
        tags["content_tag"] = content
    for axolotl_role, tag in (("user", "user_tag"), ("assistant", "assistant_tag"), ("system", "system_tag")):
        values = (spec.get("roles") or {}).get(axolotl_role)
        if values:
            values = [values] if isinstance(values, str) else list(values)
            tags[tag] = values[0]
            if len(values) > 1:
                out.note(
                    where, f"roles.{axolotl_role} lists {values}: ftkit reads one name per role, {values[0]}"
                )
    if tags:
        entry["tags"] = tags
    trained = spec.get("roles_to_train")
    if trained is not None and sorted(trained) != ["assistant"]:
        out.note(
            where,
            f"roles_to_train {trained}: ftkit trains assistant turns (data.train_on_prompt trains all turns)",
        )
    if spec.get("train_on_eos") not in (None, "turn"):
        out.note(where, f"train_on_eos {spec['train_on_eos']!r}: ftkit trains each trained turn's end marker")
    if spec.get("chat_template"):
        out.note(
            where, f"chat_template {spec['chat_template']!r}: ftkit renders every dataset with model.template"
        )
    if spec.get("drop_system_message"):
        out.note(where, "drop_system_message: not carried over; ftkit keeps a row's system message")
    return entry


def _chat_template(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    return _messages(spec, out, where)


def _sharegpt(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    return _messages(spec, out, where, sharegpt=True)


def _completion(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    return {"formatting": "text", "columns": {"text": spec.get("field", spec.get("text_column", "text"))}}


def _pairs(prompt: str, chosen: str, rejected: str, system: str | None = None) -> Callable[..., Entry]:
    """Preference rows with the prompt, the two answers (and a system prompt) in plain columns."""

    def strategy(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
        columns = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if system:
            columns["system"] = system
        return {"formatting": "alpaca", "ranking": True, "columns": columns}

    return strategy


def _user_defined_pairs(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    fields = spec.get("type") if isinstance(spec.get("type"), dict) else spec
    columns = {
        "prompt": fields.get("field_prompt", "prompt"),
        "chosen": fields.get("field_chosen", "chosen"),
        "rejected": fields.get("field_rejected", "rejected"),
    }
    if "field_system" in fields:
        columns["system"] = fields["field_system"]
    return {"formatting": "alpaca", "ranking": True, "columns": columns}


def _chat_template_pairs(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    entry = _messages(spec, out, where)
    entry["ranking"] = True
    entry["columns"] |= {
        "chosen": spec.get("field_chosen", "chosen"),
        "rejected": spec.get("field_rejected", "rejected"),
    }
    return entry


def _feedback(spec: dict[str, Any], out: Conversion, where: str) -> Entry:
    fields = spec.get("type") if isinstance(spec.get("type"), dict) else spec
    return {
        "formatting": "alpaca",
        "columns": {
            "prompt": fields.get("field_prompt", "prompt"),
            "response": fields.get("field_completion", "completion"),
            "kto_tag": fields.get("field_label", "label"),
        },
    }


STRATEGIES: dict[str, Callable[[dict[str, Any], Conversion, str], Entry]] = {
    # supervised
    "alpaca": _alpaca,
    "alpaca_chat": _alpaca,
    "alpaca:chat": _alpaca,
    "alpaca:chatml": _alpaca,
    "alpaca:phi": _alpaca,
    "chat_template": _chat_template,
    "sharegpt": _sharegpt,
    "completion": _completion,
    "pretrain": _completion,
    # preference pairs (rl: dpo, ipo, orpo, simpo; reward models)
    "intel": _pairs("question", "chosen", "rejected", system="system"),
    "argilla": _pairs("instruction", "chosen_response", "rejected_response"),
    "prompt_pairs": _pairs("prompt", "chosen", "rejected"),
    "icr": _pairs("input", "chosen", "rejected"),
    "user_defined": _user_defined_pairs,
    "chat_template.default": _chat_template_pairs,
    "chat_template.argilla_chat": _chat_template_pairs,
    "bradley_terry.chat_template": _chat_template_pairs,
    # unpaired feedback (rl: kto)
    "ultra": _feedback,
    "user_defined.kto": _feedback,
}
REFUSED = {
    "input_output": "its segments carry their own train/mask flags; write the rows as prompt and answer "
    "(alpaca or messages) instead",
    "orcamini": "no ftkit format reads Orca-mini's system/question/response rows; map them with a "
    "user-defined type (field_instruction, field_output, field_system)",
    "metharme": "no ftkit format reads Metharme's prompt strings",
}


def strategy_of(spec: dict[str, Any], rl: str | None) -> tuple[str, Callable[..., Entry]]:
    """The declared strategy for a dataset entry's `type`. Preference strategies are named
    `<template>.<strategy>` (chatml.intel, llama3.argilla): the template prefix only chose the rendering,
    which ftkit takes from model.template."""
    kind = spec.get("type", "alpaca" if rl is None else None)
    if isinstance(kind, dict):
        return "user-defined", _feedback if rl == "kto" else (_user_defined_pairs if rl else _custom)
    if not isinstance(kind, str):
        raise UserError(f"dataset {spec.get('path')!r}: its type is missing; ftkit needs the prompt strategy")
    candidates = [kind, kind.split(".", 1)[-1]] if rl is None else [kind, kind.rsplit(".", 1)[-1]]
    if kind == "user_defined.default":
        candidates.insert(0, "user_defined.kto" if rl == "kto" else "user_defined")
    for candidate in candidates:
        if candidate in STRATEGIES:
            return kind, STRATEGIES[candidate]
        if candidate in REFUSED:
            raise UserError(f"dataset {spec.get('path')!r}: type {kind}: {REFUSED[candidate]}")
    raise UserError(
        f"dataset {spec.get('path')!r}: type {kind} has no ftkit format; supported: "
        + ", ".join(sorted(STRATEGIES))
    )


def _name(path: str, taken: dict[str, Any]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", Path(path.rstrip("/")).stem or path).strip("_").lower() or "dataset"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def register(spec: dict[str, Any], out: Conversion, rl: str | None, where: str) -> str:
    """Add the registry entry for one axolotl dataset entry; returns its name."""
    if not isinstance(spec, dict) or not spec.get("path"):
        raise UserError(f"{where}: a dataset entry needs a path (a hub id or a local file)")
    path = str(spec["path"])
    kind, strategy = strategy_of(spec, rl)
    entry = strategy(spec, out, where)
    local = next((candidate for candidate in (Path(path), out.source_dir / path) if candidate.exists()), None)
    if local is not None:
        entry["file_name"] = str(local)  # relative to the working directory until the registry is written
    elif spec.get("ds_type") in ("json", "csv", "parquet", "arrow", "text"):
        raise UserError(f"{where}: {path} does not exist (ds_type {spec['ds_type']} reads a local file)")
    else:
        entry["hf_hub_url"] = path
    for key, target in (
        ("name", "subset"),
        ("split", "split"),
        ("revision", "revision"),
        ("data_dir", "folder"),
    ):
        if spec.get(key) is not None:
            entry[target] = spec[key]
    if spec.get("data_files"):
        out.note(where, f"data_files {spec['data_files']!r}: not carried over; point path at the file itself")
    known = SOURCE_KEYS | {
        "field",
        "text_column",
        "field_messages",
        "message_property_mappings",
        "message_field_role",
        "message_field_content",
        "roles",
        "roles_to_train",
        "train_on_eos",
        "chat_template",
        "drop_system_message",
        "field_chosen",
        "field_rejected",
        "field_prompt",
        "field_system",
        "field_completion",
        "field_label",
    }
    for key in spec:
        if key not in known:
            out.note(where, f"{key} ({spec[key]!r}): not carried over; ftkit has no such dataset setting")
    name = _name(path, out.registry)
    out.registry[name] = entry
    out.note(where, f"{path} (type {kind}) is registry entry {name!r}")
    return name
