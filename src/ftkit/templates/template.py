"""A chat template described as data, and its rendering into trained and untrained text segments.

Rendering follows the publisher's jinja template of each family character for character; the few
places where a publisher's template silently loses something the user gave (a system prompt that
Mistral v0.3 only shows before a final user message) raise a TemplateError in strict mode, which is
what training uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ftkit.templates.base import TOKEN_VARIABLES, ChatTemplate, Segment, TemplateError, check_order, digest

_VARIABLE = re.compile(r"\{(\w+)\}")
FALSE_WORDS = ("false", "0", "no", "off")

SystemMode = Literal["turn", "first_user", "last_user", "unsupported"]


@dataclass(frozen=True)
class Turn:
    """How one message renders: `header + content + end + after`.

    For assistant turns, content and `end` (the end-of-turn marker) are what the model learns to
    produce; `header` and `after` are never trained (nothing after the stop token is generated).
    """

    header: str
    end: str = ""
    after: str = ""
    strip: bool = False
    """Strip whitespace around the content, as the publisher's `| trim` does."""
    json_content: bool = False
    """Render the content JSON-encoded, as the publisher's `| tojson` does (Llama 3.1 tool results)."""


@dataclass(frozen=True)
class Reasoning:
    """How assistant turns carry a reasoning block (`<think>...</think>`) before the answer.

    A message's reasoning is the text before `close` in its content (or an explicit `reasoning` key).
    A kept block renders as `open + "\\n" + reasoning + "\\n" + close + "\\n\\n"` before the answer.
    """

    keep: Literal["after_last_user", "final"]
    """after_last_user (Qwen3): assistant turns after the last user message keep their block, earlier ones
    lose it. final (DeepSeek-R1): only the last message keeps it; the publisher's template strips every
    block, so ftkit keeps the last answer's reasoning in the form the model generates it."""
    open: str = "<think>"
    close: str = "</think>"
    final_empty_block: bool = False
    """The final answer gets an empty block when it has no reasoning (Qwen3)."""
    switch: str | None = None
    """Variable that turns thinking off ("false"): the empty block then belongs to the prompt (Qwen3)."""
    prompt_opens_block: bool = False
    """The generation prompt already opens the block (DeepSeek-R1: ends with `<think>\\n`)."""
    lstrip_answer: bool = True
    """Strip leading newlines from the answer after removing the block (Qwen3 does, DeepSeek-R1 does not)."""


@dataclass(frozen=True)
class Template(ChatTemplate):
    """A chat format declared as data. Strings may use `{variable}` placeholders for the names in
    `variables`."""

    name: str
    description: str
    user: Turn
    assistant: Turn
    system: Turn | None = None
    system_mode: SystemMode = "turn"
    """turn: its own turn first; first_user: prepended to the first user message (+ system_separator);
    last_user: prepended to the last message when it is a user message (Mistral); unsupported: an error."""
    system_separator: str = ""
    system_always: bool = False
    """Render the system turn even without a system prompt (empty content)."""
    skip_empty_system: bool = False
    """An empty system prompt renders nothing (Phi-3.5)."""
    default_system: str | None = None
    """System prompt used when a conversation has none."""
    tool: Turn | None = None
    prefix: str = ""
    """Text before the first turn, e.g. the BOS token written out."""
    suffix: str = ""
    """Text after the last turn of a finished conversation (no generation prompt), e.g. Phi-3's EOS."""
    generation_prompt: str | None = None
    """What opens the model's answer; defaults to the assistant header."""
    reasoning: Reasoning | None = None
    stop: tuple[str, ...] = ()
    """Strings that end generation (the end-of-turn token first)."""
    special_tokens: tuple[str, ...] = ()
    """Marker tokens the template writes, which must be single tokens of the tokenizer."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Template variables and their defaults (e.g. date_string, enable_thinking)."""
    aliases: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    """Base checkpoints with no template of their own that this one is meant for (for `template list`)."""

    # ----------------------------------------------------------------- variables
    def resolve_variables(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        # Token variables come from the tokenizer; without one they stay visible as {eos_token}.
        values = dict(self.variables)
        for key, value in (overrides or {}).items():
            if key not in values and key not in TOKEN_VARIABLES:
                known = ", ".join(v for v in values if v not in TOKEN_VARIABLES) or "none"
                raise TemplateError(f"template {self.name} has no variable {key!r} (its variables: {known})")
            values[key] = value
        return values

    def fingerprint(self) -> str:
        return digest(repr(self))

    def stop_strings(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The strings that end generation, with variables such as {eos_token} filled in."""
        values = self.resolve_variables(variables)
        return [text for text in (self._fill(stop, values) for stop in self.stop) if text]

    def _fill(self, text: str, values: Mapping[str, str]) -> str:
        return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def _thinking_off(self, values: Mapping[str, str]) -> bool:
        switch = self.reasoning.switch if self.reasoning else None
        return bool(switch) and values.get(switch, "").strip().lower() in FALSE_WORDS

    def _prompt_opening(self, values: Mapping[str, str]) -> str:
        """The generation prompt: assistant header plus what the format puts before an answer."""
        text = self.assistant.header if self.generation_prompt is None else self.generation_prompt
        if self.reasoning and self.reasoning.prompt_opens_block:
            text += self.reasoning.open + "\n"
        elif self._thinking_off(values):
            text += self._block("")
        return self._fill(text, values)

    def _block(self, reasoning: str) -> str:
        assert self.reasoning is not None
        return f"{self.reasoning.open}\n{reasoning}\n{self.reasoning.close}\n\n"

    # ----------------------------------------------------------------- rendering
    def render(
        self,
        messages: Sequence[Mapping[str, str]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
        strict: bool = True,
        tools: list | None = None,
    ) -> list[Segment]:
        """Render a conversation. A leading system message wins over `system`, which wins over the default.

        With strict=False, publisher behaviors that lose input are reproduced silently (what
        `ftkit template render` shows); with strict=True they raise TemplateError (training).
        """
        if tools:
            raise TemplateError(
                f"template {self.name} does not render tool definitions; use `template: tokenizer` with a "
                "model whose own chat template does"
            )
        values = self.resolve_variables(variables)
        messages = [dict(m) for m in messages]
        if messages and messages[0].get("role") == "system":
            system = messages.pop(0).get("content")
            if not isinstance(system, str):
                raise TemplateError("the system message's content must be text")
        if system is None:
            system = self.default_system
        check_order(messages)
        out = _Writer(self, values)

        out.text(self.prefix)
        if system is not None or self.system_always:
            self._render_system(out, system or "", messages, strict)
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        for index, message in enumerate(messages):
            is_last = index == len(messages) - 1
            if message["role"] == "assistant":
                self._render_answer(out, message, index > last_user, is_last, values, strict)
            else:
                self._render_prompt_turn(out, message, index, messages, system)
        if add_generation_prompt:
            out.text(self._prompt_opening(values), fill=False)
        else:
            out.text(self.suffix)
        return out.segments

    def _render_system(self, out: _Writer, system: str, messages: list[dict], strict: bool) -> None:
        if self.system_mode == "unsupported" or (self.system is None and self.system_mode == "turn"):
            raise TemplateError(f"template {self.name} does not support a system message; remove it")
        if self.system_mode == "last_user" and not (messages and messages[-1]["role"] == "user") and strict:
            raise TemplateError(
                f"template {self.name} shows a system prompt only inside the last user message of a prompt; "
                "the publisher's template drops it from a conversation that ends with an answer, so it would "
                "not be trained. Remove the system prompt or move it into the user message."
            )
        if self.system_mode != "turn" or (self.skip_empty_system and not system):
            return
        assert self.system is not None
        content = system.strip() if self.system.strip else system
        out.text(self.system.header)
        out.raw(content)
        out.text(self.system.end + self.system.after)

    def _render_prompt_turn(
        self, out: _Writer, message: dict, index: int, messages: list[dict], system: str | None
    ) -> None:
        turn = self.user if message["role"] == "user" else self.tool
        if turn is None:
            raise TemplateError(f"template {self.name} has no {message['role']} role")
        content = message["content"].strip() if turn.strip else message["content"]
        if turn.json_content:
            content = json.dumps(content, ensure_ascii=False)
        if message["role"] == "user" and system is not None:
            first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
            if (self.system_mode == "first_user" and index == first_user) or (
                self.system_mode == "last_user" and index == len(messages) - 1
            ):
                content = system + self.system_separator + content
        out.text(turn.header)
        out.raw(content)
        out.text(turn.end + turn.after)

    def _render_answer(
        self,
        out: _Writer,
        message: dict,
        after_last_user: bool,
        is_last: bool,
        values: Mapping[str, str],
        strict: bool,
    ) -> None:
        turn = self.assistant
        answer, reasoning = self._split_reasoning(message)
        block = ""
        if self.reasoning is not None:
            if self.reasoning.keep == "after_last_user":
                keep = after_last_user and (is_last or bool(reasoning))
            else:
                keep = is_last and bool(reasoning)
            if keep and (reasoning or self.reasoning.final_empty_block):
                block = self._block((reasoning or "").strip("\n"))
            if keep or (reasoning is not None and self.reasoning.lstrip_answer):
                answer = answer.lstrip("\n")
        if turn.strip:
            answer = answer.strip()
        out.text(turn.header)
        prompt_part = ""
        if block and self.reasoning is not None:
            if self.reasoning.prompt_opens_block:
                prompt_part = self.reasoning.open + "\n"
            elif not reasoning and self._thinking_off(values):
                prompt_part = block
            elif reasoning and self._thinking_off(values) and strict:
                raise TemplateError(
                    f"an answer carries a reasoning block but {self.reasoning.switch} is false; "
                    f"set {self.reasoning.switch}=true or remove the reasoning from the data"
                )
        if prompt_part:
            out.raw(prompt_part)
            block = block[len(prompt_part) :]
        out.completion(block + answer + out.fill(turn.end))
        out.text(turn.after)

    def _split_reasoning(self, message: Mapping[str, str]) -> tuple[str, str | None]:
        """The answer and its reasoning (None when the message has no block)."""
        content = message["content"]
        if self.reasoning is None:
            return content, None
        if isinstance(message.get("reasoning"), str):
            return content, message["reasoning"]
        close, open_ = self.reasoning.close, self.reasoning.open
        if close not in content:
            return content, None
        reasoning = content.split(close)[0].rstrip("\n").split(open_)[-1].lstrip("\n")
        return content.split(close)[-1], reasoning


class _Writer:
    """Collects segments; counts assistant turns."""

    def __init__(self, template: Template, values: Mapping[str, str]) -> None:
        self.template = template
        self.values = values
        self.segments: list[Segment] = []
        self.turn = 0

    def fill(self, text: str) -> str:
        return self.template._fill(text, self.values)

    def text(self, text: str, fill: bool = True) -> None:
        """Template text (variables filled), never trained."""
        self.raw(self.fill(text) if fill else text)

    def raw(self, text: str) -> None:
        """User-given text, never trained."""
        if text:
            self.segments.append(Segment(text, False, self.turn))

    def completion(self, text: str) -> None:
        if text:
            self.segments.append(Segment(text, True, self.turn))
        self.turn += 1
