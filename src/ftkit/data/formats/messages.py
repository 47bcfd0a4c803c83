"""sharegpt and openai: a column holding a list of messages, role and content under configurable tags.

sharegpt defaults: messages in `conversations`, `{"from": "human" | "gpt" | "observation" |
"function_call" | "system", "value": ...}`; openai defaults: messages in `messages`, `{"role": "user" |
"assistant" | "tool" | "system", "content": ...}`. Both honor LLaMA-Factory's `tags`. A tool call
(function_call) is an assistant turn written as text; a tool result (observation) is a tool turn. With
`ranking`, the conversation ends with the user's message and chosen/rejected hold the two answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftkit.data.formats.base import BadRow, Example, Format, Row, example, row_system

if TYPE_CHECKING:
    from ftkit.data.registry import DatasetSpec


@dataclass(frozen=True)
class _Tags:
    messages: str
    role: str
    content: str
    user: str
    assistant: str
    observation: str
    function: str
    system: str


DEFAULTS = {
    "sharegpt": _Tags(
        "conversations", "from", "value", "human", "gpt", "observation", "function_call", "system"
    ),
    "openai": _Tags("messages", "role", "content", "user", "assistant", "tool", "function_call", "system"),
}


def _tags(spec: DatasetSpec) -> _Tags:
    base, tags = DEFAULTS[spec.formatting], spec.tags
    return _Tags(
        spec.columns.messages or base.messages,
        tags.role_tag or base.role,
        tags.content_tag or base.content,
        tags.user_tag or base.user,
        tags.assistant_tag or base.assistant,
        tags.observation_tag or base.observation,
        tags.function_tag or base.function,
        tags.system_tag or base.system,
    )


def _required(spec: DatasetSpec) -> list[str]:
    cols = spec.columns
    needed = [_tags(spec).messages, cols.system, cols.tools]
    if spec.ranking:
        needed += [cols.chosen or "chosen", cols.rejected or "rejected"]
    return [c for c in needed if c]


REASONING_KEYS = ("reasoning_content", "reasoning")
"""Where reasoning datasets (Qwen3, DeepSeek-R1 style) keep an answer's thinking beside its content."""


def _text_parts(content: list, where: str) -> str | None:
    """OpenAI content parts (`[{"type": "text", "text": ...}]`) as text; None when `content` is not parts."""
    if not content or not all(isinstance(part, dict) and "type" in part for part in content):
        return None
    for part in content:
        if part["type"] != "text" or not isinstance(part.get("text"), str):
            raise BadRow(f"{where}: content part of type {part['type']!r}; ftkit trains on text parts only")
    return "".join(part["text"] for part in content)


def _content(message: dict, tags: _Tags, where: str) -> str:
    content = message.get(tags.content)
    if isinstance(content, int | float) and not isinstance(content, bool):
        content = str(content)
    if isinstance(content, list):
        parts = _text_parts(content, where)
        content = parts if parts is not None else content
    if isinstance(content, dict | list):  # a structured tool call or result
        content = json.dumps(content, ensure_ascii=False)
    if not isinstance(content, str):
        raise BadRow(f"{where}: {tags.content!r} holds {type(content).__name__}, expected text")
    if not content.strip():
        raise BadRow(f"{where}: empty content")
    return content


def _role(message: dict, tags: _Tags, where: str) -> str:
    roles = {
        tags.user: "user",
        tags.assistant: "assistant",
        tags.function: "assistant",
        tags.observation: "tool",
        tags.system: "system",
    }
    value = message.get(tags.role)
    if value not in roles:
        known = ", ".join(roles)
        raise BadRow(f"{where}: role {value!r} is not one of {known} (set the entry's tags)")
    return roles[value]


def _answer(value: object, tags: _Tags, what: str) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise BadRow(f"{what} answer is empty")
        return value
    if isinstance(value, dict):
        if _role(value, tags, what) != "assistant":
            raise BadRow(f"{what} answer must be an assistant message")
        return _content(value, tags, what)
    raise BadRow(f"{what} answer must be a message or text, got {type(value).__name__}")


def convert(row: Row, spec: DatasetSpec) -> Example:
    tags = _tags(spec)
    raw = row.get(tags.messages)
    if not isinstance(raw, list) or not raw:
        raise BadRow(f"messages column {tags.messages!r} must be a non-empty list of messages")
    messages, system = [], row_system(row, spec)
    for index, message in enumerate(raw):
        where = f"message {index}"
        if not isinstance(message, dict):
            raise BadRow(
                f"{where} is {type(message).__name__}, expected an object with {tags.role!r} and {tags.content!r}"
            )
        role = _role(message, tags, where)
        if role == "system":
            if index != 0:
                raise BadRow(f"{where}: a system message is only allowed first")
            system = _content(message, tags, where)
            continue
        content = _content(message, tags, where)
        reasoning = next((message[key] for key in REASONING_KEYS if isinstance(message.get(key), str)), "")
        if role == "assistant" and reasoning.strip():
            # The form the reasoning templates parse (and the model generates): the block, then the answer.
            content = f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"
        messages.append({"role": role, "content": content})
    return _finish(row, spec, tags, system, messages)


def _tools(row: Row, spec: DatasetSpec) -> str | None:
    """The row's tool definitions as JSON text; None when absent or empty (`[]`, `""`)."""
    value = row.get(spec.columns.tools) if spec.columns.tools else None
    if isinstance(value, str):
        try:
            empty = not value.strip() or not json.loads(value)
        except json.JSONDecodeError:
            empty = False  # not JSON: passed on as written
        return None if empty else value
    return json.dumps(value, ensure_ascii=False) if value else None


def _finish(row: Row, spec: DatasetSpec, tags: _Tags, system: str | None, messages: list) -> Example:
    tools = _tools(row, spec)
    if spec.ranking:
        cols = spec.columns
        chosen = _answer(row.get(cols.chosen or "chosen"), tags, "chosen")
        rejected = _answer(row.get(cols.rejected or "rejected"), tags, "rejected")
        return example(system, messages, chosen=chosen, rejected=rejected, tools=tools)
    return example(system, messages, tools=tools)


def _messages_format(name: str, description: str) -> Format:
    return Format(
        name,
        convert,
        _required,
        columns=("messages", "system", "tools", "chosen", "rejected", "kto_tag"),
        uses_tags=True,
        ranking=True,
        description=description,
    )


SHAREGPT = _messages_format("sharegpt", "message lists {from: human|gpt|..., value} (LLaMA-Factory's tags)")
OPENAI = _messages_format("openai", "message lists {role: user|assistant|..., content} (OpenAI's schema)")
