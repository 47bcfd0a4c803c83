"""A chat template described as data, and its rendering into trained and untrained text segments."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ftkit.errors import UserError

Role = Literal["system", "user", "assistant", "tool"]
_VARIABLE = re.compile(r"\{(\w+)\}")
TOKEN_VARIABLES = ("bos_token", "eos_token")
"""Variables every template accepts; callers fill them from the tokenizer, as jinja chat templates do."""


class TemplateError(UserError):
    """A conversation the template cannot render (wrong role order, unsupported system message, ...)."""


@dataclass(frozen=True)
class Turn:
    """How one message renders: `header + content + end + after`.

    For assistant turns, content and `end` (the end-of-turn token) are what the model learns to
    produce; `header` and `after` are never trained (the model does not generate what follows its
    stop token).
    """

    header: str
    end: str = ""
    after: str = ""


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text. `completion` pieces are assistant output; `turn` counts assistant turns."""

    text: str
    completion: bool
    turn: int


@dataclass(frozen=True)
class Template:
    """A chat format. Strings may use `{variable}` placeholders for the names in `variables`."""

    name: str
    family: str
    description: str
    user: Turn
    assistant: Turn
    system: Turn | None = None
    """None: the format has no system role; a system message is an error."""
    tool: Turn | None = None
    prefix: str = ""
    """Text before the first turn, e.g. the BOS token written out."""
    default_system: str | None = None
    """System prompt used when a conversation has none."""
    system_always: bool = False
    """Render the system turn even when there is no system prompt (with empty content)."""
    strip_content: bool = False
    """Strip surrounding whitespace from message content, as the publisher's template does."""
    stop: tuple[str, ...] = ()
    """Strings that end generation (the end-of-turn token first)."""
    special_tokens: tuple[str, ...] = ()
    """Marker tokens the template writes, which must be single tokens of the tokenizer."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Template variables and their defaults (e.g. date_string)."""
    aliases: tuple[str, ...] = ()

    def resolve_variables(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        values = {name: "" for name in TOKEN_VARIABLES} | dict(self.variables)
        for key, value in (overrides or {}).items():
            if key not in values:
                known = ", ".join(values) or "none"
                raise TemplateError(f"template {self.name} has no variable {key!r} (its variables: {known})")
            values[key] = value
        return values

    def stop_strings(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The strings that end generation, with variables such as {eos_token} filled in."""
        values = self.resolve_variables(variables)
        return [text for text in (self._fill(stop, values) for stop in self.stop) if text]

    def _fill(self, text: str, values: Mapping[str, str]) -> str:
        return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def render(
        self,
        messages: Sequence[Mapping[str, str]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
    ) -> list[Segment]:
        """Render a conversation. A leading system message wins over `system`, which wins over the default."""
        values = self.resolve_variables(variables)
        messages = list(messages)
        if messages and messages[0].get("role") == "system":
            system = messages[0]["content"]
            messages = messages[1:]
        if system is None:
            system = self.default_system
        _check_order(messages)

        segments: list[Segment] = []
        turn_index = 0

        def emit(text: str, completion: bool = False) -> None:
            if text:
                segments.append(Segment(self._fill(text, values), completion, turn_index))

        emit(self.prefix)
        if system is not None or self.system_always:
            if self.system is None:
                raise TemplateError(f"template {self.name} does not support a system message; remove it")
            content = self._content(system or "")
            emit(self.system.header)
            if content:
                segments.append(Segment(content, False, turn_index))
            emit(self.system.end + self.system.after)
        for message in messages:
            role, content = message["role"], self._content(message["content"])
            if role == "assistant":
                emit(self.assistant.header)
                segments.append(Segment(content + self._fill(self.assistant.end, values), True, turn_index))
                emit(self.assistant.after)
                turn_index += 1
                continue
            turn = self.user if role == "user" else self.tool
            if turn is None:
                raise TemplateError(f"template {self.name} has no {role} role")
            emit(turn.header)
            if content:
                segments.append(Segment(content, False, turn_index))
            emit(turn.end + turn.after)
        if add_generation_prompt:
            emit(self.assistant.header)
        return segments

    def render_text(
        self,
        messages: Sequence[Mapping[str, str]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
    ) -> str:
        return "".join(s.text for s in self.render(messages, system, add_generation_prompt, variables))

    def _content(self, text: str) -> str:
        return text.strip() if self.strip_content else text


def _check_order(messages: Sequence[Mapping[str, str]]) -> None:
    """User and assistant alternate, starting with user; tool results follow an assistant turn."""
    previous = None
    for index, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role not in ("user", "assistant", "tool", "system"):
            raise TemplateError(f"message {index}: unknown role {role!r} (use user, assistant, tool, system)")
        if not isinstance(content, str):
            raise TemplateError(
                f"message {index} ({role}): content must be text, got {type(content).__name__}"
            )
        if role == "system":
            raise TemplateError(f"message {index}: a system message is only allowed first")
        expected = {
            None: ("user",),
            "user": ("assistant",),
            "assistant": ("user", "tool"),
            "tool": ("assistant", "tool"),
        }
        if role not in expected[previous]:
            after = f"after {previous}" if previous else "first"
            raise TemplateError(
                f"message {index}: role {role} cannot come {after}; expected {' or '.join(expected[previous])}"
            )
        previous = role
