"""The `tokenizer` template: the model tokenizer's own jinja `chat_template`, whatever it is.

Rendering goes through transformers' jinja renderer. Which characters are trained is derived by
rendering prefixes of the conversation: an assistant turn starts where the rendered prompt up to it
(with the generation prompt) ends, and ends after its content and the special token that closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ftkit.templates.base import ChatTemplate, Segment, TemplateError, check_order, digest


class TokenizerTemplate(ChatTemplate):
    """A tokenizer's jinja template behind the ChatTemplate interface."""

    name = "tokenizer"
    description = "The model tokenizer's own jinja chat_template (masks derived by rendering prefixes)."
    special_tokens: tuple[str, ...] = ()
    variables: Mapping[str, str] = {}
    aliases: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    renders_tools = True

    def __init__(self, tokenizer: Any) -> None:
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            raise TemplateError(
                "template tokenizer: this tokenizer has no chat_template; pick a built-in template "
                "(`ftkit template list`)"
            )
        self.tokenizer = tokenizer
        self.chat_template = template if isinstance(template, str) else template.get("default")
        self.markers = sorted(
            (str(t) for t in getattr(tokenizer, "all_special_tokens", []) or [] if str(t)),
            key=len,
            reverse=True,
        )

    def resolve_variables(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        return dict(overrides or {})

    def _render(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        variables: Mapping,
        tools: list | None = None,
    ) -> str:
        from transformers.utils.chat_template_utils import render_jinja_template

        extra = {k: v for k, v in variables.items() if k not in ("bos_token", "eos_token")}
        for key, value in list(extra.items()):
            if isinstance(value, str) and value.lower() in ("true", "false"):
                extra[key] = value.lower() == "true"
        tokens = {
            name: getattr(self.tokenizer, name, None) or ""
            for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        }
        try:
            rendered, _ = render_jinja_template(
                [list(messages)],
                tools=tools,
                chat_template=self.chat_template,
                add_generation_prompt=add_generation_prompt,
                **tokens,
                **extra,
            )
        except Exception as exc:  # the jinja template's own raise_exception and errors
            raise TemplateError(f"the tokenizer's chat template refused this conversation: {exc}") from None
        return rendered[0]

    def _closing_marker(self, text: str, position: int) -> int:
        """Length of the special token that starts at `position` (0 when none does)."""
        for marker in self.markers:
            if text.startswith(marker, position):
                return len(marker)
        return 0

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str | None = None,
        add_generation_prompt: bool = False,
        variables: Mapping[str, str] | None = None,
        strict: bool = True,
        tools: list | None = None,
    ) -> list[Segment]:
        messages = [dict(m) for m in messages]
        if system is not None and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": system})
        body = messages[1:] if messages and messages[0].get("role") == "system" else messages
        check_order(body)
        values = dict(variables or {})
        full = self._render(messages, add_generation_prompt, values, tools)
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render(messages[:index], True, values, tools)
            if not full.startswith(prompt):
                raise TemplateError(
                    f"template tokenizer: the chat template renders the history before assistant turn {index} "
                    "differently from the full conversation, so its trained span cannot be located; "
                    "use a built-in template"
                )
            answer = message["content"].strip()
            found = full.find(answer, len(prompt)) if answer else len(prompt)
            if found < 0:
                raise TemplateError(
                    f"template tokenizer: the chat template rewrites assistant turn {index} (e.g. it drops the "
                    "reasoning of earlier turns), so its trained span cannot be located; use the model family's "
                    "built-in template (see `ftkit template list`)"
                )
            end = found + len(answer)
            after = end
            while after < len(full) and full[after].isspace():  # content's own trailing whitespace
                after += 1
            marker = self._closing_marker(full, after)
            spans.append((len(prompt), after + marker if marker else end))
        segments = []
        position = 0
        for turn, (start, end) in enumerate(spans):
            if start > position:
                segments.append(Segment(full[position:start], False, turn))
            segments.append(Segment(full[start:end], True, turn))
            position = end
        if position < len(full):
            segments.append(Segment(full[position:], False, len(spans)))
        return segments

    def fingerprint(self) -> str:
        return digest(self.chat_template)

    def stop_strings(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The eos token, and the special token that closes an assistant turn in this template."""
        stops = [self.tokenizer.eos_token] if self.tokenizer.eos_token else []
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        try:
            text = self._render(probe, False, dict(variables or {}))
        except TemplateError:
            return stops
        position = text.rfind("y") + 1
        size = self._closing_marker(text, position)
        if size and text[position : position + size] not in stops:
            stops.insert(0, text[position : position + size])
        return stops
