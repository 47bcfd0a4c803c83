"""What every chat template offers, built-in (template.py) or the tokenizer's own jinja (tokenizer.py):
one interface, so that nothing needs to know which kind it holds."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ftkit.errors import UserError

TOKEN_VARIABLES = ("bos_token", "eos_token")
"""Variables every template accepts; callers fill them from the tokenizer, as jinja chat templates do."""


class TemplateError(UserError):
    """A conversation the template cannot render (wrong role order, unsupported system message, ...)."""


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text. `completion` pieces are assistant output; `turn` counts assistant turns."""

    text: str
    completion: bool
    turn: int


def token_variables(tokenizer: Any) -> dict[str, str]:
    """Template variables that come from the tokenizer, as in jinja chat templates."""
    return {"bos_token": tokenizer.bos_token or "", "eos_token": tokenizer.eos_token or ""}


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class ChatTemplate(ABC):
    """A chat format: renders conversations into trained and untrained segments, and says what ends an
    answer. Implementations set the attributes below."""

    name: str
    description: str
    special_tokens: tuple[str, ...]
    """Marker tokens the template writes, which must be single tokens of the tokenizer."""
    variables: Mapping[str, str]
    """Template variables and their defaults (e.g. date_string, enable_thinking)."""
    aliases: tuple[str, ...]
    base_models: tuple[str, ...]
    renders_tools: ClassVar[bool] = False
    """Whether tool definitions (a row's `tools`) can be rendered."""

    @abstractmethod
    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
        strict: bool = True,
        tools: list | None = None,
    ) -> list[Segment]:
        """The conversation as segments; assistant output is marked `completion`."""

    def render_text(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
        strict: bool = True,
    ) -> str:
        segments = self.render(messages, system, add_generation_prompt, variables, strict)
        return "".join(segment.text for segment in segments)

    @abstractmethod
    def resolve_variables(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The template's variables with `overrides` applied (unknown names are a TemplateError)."""

    @abstractmethod
    def stop_strings(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The strings that end generation, the end-of-turn marker first."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A digest of everything that shapes the rendering (part of the tokenized-data cache key)."""


def check_order(messages: Sequence[Mapping[str, str]]) -> None:
    """User and assistant alternate, starting with user; tool results follow an assistant turn."""
    previous = None
    expected = {
        None: ("user",),
        "user": ("assistant",),
        "assistant": ("user", "tool"),
        "tool": ("assistant", "tool"),
    }
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
        if role not in expected[previous]:
            after = f"after {previous}" if previous else "first"
            wanted = " or ".join(expected[previous])
            raise TemplateError(f"message {index}: role {role} cannot come {after}; expected {wanted}")
        previous = role
