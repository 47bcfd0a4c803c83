"""Built-in chat templates, one declaration each, matching what the model publishers ship."""

from __future__ import annotations

from ftkit.templates.registry import register
from ftkit.templates.template import Template, Turn

register(
    Template(
        name="chatml",
        family="chatml",
        description="Generic ChatML (<|im_start|>role ... <|im_end|>): no BOS, no default system prompt.",
        system=Turn("<|im_start|>system\n", "<|im_end|>", "\n"),
        user=Turn("<|im_start|>user\n", "<|im_end|>", "\n"),
        assistant=Turn("<|im_start|>assistant\n", "<|im_end|>", "\n"),
        tool=Turn("<|im_start|>tool\n", "<|im_end|>", "\n"),
        stop=("<|im_end|>",),
        special_tokens=("<|im_start|>", "<|im_end|>"),
    )
)

_LLAMA3_HEADER = "<|start_header_id|>{role}<|end_header_id|>\n\n"


def _llama3_turn(role: str, header_extra: str = "") -> Turn:
    return Turn(_LLAMA3_HEADER.replace("{role}", role) + header_extra, "<|eot_id|>")


register(
    Template(
        name="llama3",
        family="llama3",
        description="Llama 3 / 3.0 Instruct: header tokens per turn, <|eot_id|> ends a turn, content trimmed.",
        prefix="<|begin_of_text|>",
        system=_llama3_turn("system"),
        user=_llama3_turn("user"),
        assistant=_llama3_turn("assistant"),
        tool=_llama3_turn("ipython"),
        strip_content=True,
        stop=("<|eot_id|>", "<|end_of_text|>"),
        special_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    )
)

register(
    Template(
        name="llama3_2",
        family="llama3_2",
        description="Llama 3.2 Instruct: always opens with a system turn carrying the knowledge and today's date.",
        prefix="<|begin_of_text|>",
        system=_llama3_turn("system", "Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n"),
        system_always=True,
        user=_llama3_turn("user"),
        assistant=_llama3_turn("assistant"),
        tool=_llama3_turn("ipython"),
        strip_content=True,
        stop=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
        special_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        variables={"date_string": "26 Jul 2024"},
        aliases=("llama3.2",),
    )
)

register(
    Template(
        name="plain",
        family="plain",
        description="No chat markup: prompt and response are concatenated, the response ends with EOS "
        "(base models such as GPT-2 or GPT-J that publish no template).",
        user=Turn(""),
        assistant=Turn("", "{eos_token}"),
        stop=("{eos_token}",),
    )
)
