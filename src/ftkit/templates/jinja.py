"""A jinja `chat_template` generated from a Template, for exported tokenizers.

With it, `tokenizer.apply_chat_template(...)` on an exported model renders exactly what ftkit rendered
during training (tests/test_templates.py checks the two against each other for every built-in). The
generated template reproduces publisher behaviors as the non-strict renderer does.
"""

from __future__ import annotations

import json
import re

from ftkit.templates.base import TOKEN_VARIABLES
from ftkit.templates.template import FALSE_WORDS, Template, Turn

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _expr(text: str) -> str:
    """A jinja expression for `text`, with {variable} placeholders turned into variable references."""
    parts = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(_literal(text[position : match.start()]))
        parts.append(match.group(1))
        position = match.end()
    if position < len(text):
        parts.append(_literal(text[position:]))
    return " + ".join(parts) if parts else "''"


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _emit(text: str) -> str:
    return "{{- " + _expr(text) + " }}" if text else ""


def _content(variable: str, turn: Turn) -> str:
    value = f"({variable} | trim)" if turn.strip else variable
    return f"({value} | tojson)" if turn.json_content else value


def _thinking_off(template: Template) -> str:
    switch = template.reasoning.switch if template.reasoning else None
    if not switch:
        return "false"
    words = ", ".join(_literal(w) for w in FALSE_WORDS)
    return f"({switch} is defined and ({switch} is false or ({switch} | string | lower) in [{words}]))"


def _system_block(template: Template) -> str:
    if template.system_mode in ("first_user", "last_user"):
        return ""
    if template.system_mode == "unsupported" or template.system is None:
        return "{%- if system is not none %}{{ raise_exception('System role not supported') }}{%- endif %}"
    turn = template.system
    condition = "true" if template.system_always else "system is not none"
    if template.skip_empty_system:
        condition = f"({condition}) and system"
    body = (
        _emit(turn.header) + "{{- " + _content("(system or '')", turn) + " }}" + _emit(turn.end + turn.after)
    )
    return "{%- if " + condition + " %}" + body + "{%- endif %}"


def _user_turn(template: Template) -> str:
    turn = template.user
    content = "{%- set content = " + _content("message['content']", turn) + " %}"
    if template.system_mode == "first_user":
        content += (
            "{%- if system is not none and loop.index0 == ns.first_user %}"
            "{%- set content = system + " + _literal(template.system_separator) + " + content %}{%- endif %}"
        )
    elif template.system_mode == "last_user":
        content += (
            "{%- if system is not none and loop.last %}"
            "{%- set content = system + " + _literal(template.system_separator) + " + content %}{%- endif %}"
        )
    return content + _emit(turn.header) + "{{- content }}" + _emit(turn.end + turn.after)


def _assistant_turn(template: Template) -> str:
    turn, reasoning = template.assistant, template.reasoning
    parts = ["{%- set content = message['content'] %}{%- set block = '' %}"]
    if reasoning is not None:
        close, open_ = _literal(reasoning.close), _literal(reasoning.open)
        parts.append(
            "{%- set reasoning = none %}"
            "{%- if message['reasoning'] is string %}{%- set reasoning = message['reasoning'] %}"
            f"{{%- elif {close} in content %}}"
            f"{{%- set reasoning = content.split({close})[0].rstrip('\\n').split({open_})[-1].lstrip('\\n') %}}"
            f"{{%- set content = content.split({close})[-1] %}}"
            "{%- endif %}"
        )
        if reasoning.keep == "after_last_user":
            parts.append("{%- set keep = loop.index0 > ns.last_user and (loop.last or reasoning) %}")
        else:
            parts.append("{%- set keep = loop.last and reasoning %}")
        empty = "true" if reasoning.final_empty_block else "false"
        parts.append(
            f"{{%- if keep and (reasoning or {empty}) %}}"
            f"{{%- set block = {open_} + '\\n' + (reasoning or '').strip('\\n') + '\\n' + {close} + '\\n\\n' %}}"
            "{%- endif %}"
        )
        lstrip = "true" if reasoning.lstrip_answer else "false"
        parts.append(
            f"{{%- if keep or (reasoning is not none and {lstrip}) %}}{{%- set content = content.lstrip('\\n') %}}"
            "{%- endif %}"
        )
    if turn.strip:
        parts.append("{%- set content = content | trim %}")
    parts.append(_emit(turn.header) + "{{- block + content }}" + _emit(turn.end + turn.after))
    return "".join(parts)


def _generation_prompt(template: Template) -> str:
    opening = template.assistant.header if template.generation_prompt is None else template.generation_prompt
    text = _emit(opening)
    reasoning = template.reasoning
    if reasoning and reasoning.prompt_opens_block:
        text += _emit(reasoning.open + "\n")
    elif reasoning and reasoning.switch:
        text += (
            "{%- if " + _thinking_off(template) + " %}" + _emit(f"{reasoning.open}\n\n{reasoning.close}\n\n")
        )
        text += "{%- endif %}"
    return text


def to_jinja(template: Template) -> str:
    """The jinja chat_template equivalent of `template` (whitespace-controlled, one logical line)."""
    defaults = "".join(
        "{%- if " + name + " is not defined %}{%- set " + name + " = " + _literal(value) + " %}{%- endif %}"
        for name, value in template.variables.items()
        if name not in TOKEN_VARIABLES
    )
    default_system = "none" if template.default_system is None else _literal(template.default_system)
    head = (
        defaults + "{%- if messages and messages[0]['role'] == 'system' %}"
        "{%- set system = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
        "{%- else %}{%- set system = " + default_system + " %}{%- set loop_messages = messages %}{%- endif %}"
        "{%- set ns = namespace(last_user=-1, first_user=-1) %}"
        "{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
        "{%- set ns.last_user = loop.index0 %}{%- if ns.first_user < 0 %}{%- set ns.first_user = loop.index0 %}"
        "{%- endif %}{%- endif %}{%- endfor %}"
    )
    tool = template.tool
    tool_branch = (
        "{%- elif message['role'] == 'tool' %}"
        + _emit(tool.header)
        + "{{- "
        + _content("message['content']", tool)
        + " }}"
        + _emit(tool.end + tool.after)
        if tool
        else ""
    )
    loop = (
        "{%- for message in loop_messages %}"
        "{%- if message['role'] == 'user' %}" + _user_turn(template) + ""
        "{%- elif message['role'] == 'assistant' %}" + _assistant_turn(template) + tool_branch + ""
        "{%- else %}{{ raise_exception('Unsupported role ' + message['role']) }}{%- endif %}"
        "{%- endfor %}"
    )
    tail = "{%- if add_generation_prompt %}" + _generation_prompt(template)
    tail += "{%- else %}" + _emit(template.suffix) + "{%- endif %}" if template.suffix else "{%- endif %}"
    return head + _emit(template.prefix) + _system_block(template) + loop + tail
