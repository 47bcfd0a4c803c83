"""`ftkit template list` and `ftkit template render`: what the built-ins are, and exactly what one renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.templates.base import token_variables
from ftkit.templates.registry import TOKENIZER, all_templates, get_template


def describe_templates() -> str:
    """A table of the templates: name, aliases, variables, description."""
    rows = []
    for template in all_templates():
        extras = []
        if template.aliases:
            extras.append("aliases " + ", ".join(template.aliases))
        variables = {k: v for k, v in template.variables.items()}
        if variables:
            extras.append("variables " + ", ".join(f"{k}={v}" for k, v in variables.items()))
        suffix = f" [{'; '.join(extras)}]" if extras else ""
        rows.append((template.name, template.description + suffix))
    rows.append(
        (TOKENIZER, "The model tokenizer's own jinja chat_template; masks derived by rendering prefixes.")
    )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)


def read_messages(path: str | Path) -> list[dict[str, Any]]:
    """A JSON list of messages, or an object with a "messages" list."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read messages from {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise UserError(
            f'{path}: expected a list of {{"role", "content"}} messages (or {{"messages": [...]}})'
        )
    return messages


def parse_assignments(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. enable_thinking=false")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def render_file(
    name: str,
    messages_path: str,
    add_generation_prompt: bool,
    assignments: list[str],
    tokenizer_path: str | None,
) -> str:
    """The rendered text, exactly as the template writes it (publisher behaviors reproduced)."""
    tokenizer = None
    if tokenizer_path:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    template = get_template(name, tokenizer)
    variables = parse_assignments(assignments)
    if tokenizer is not None:
        variables = {**token_variables(tokenizer), **variables}
    messages = read_messages(messages_path)
    return template.render_text(
        messages, add_generation_prompt=add_generation_prompt, variables=variables, strict=False
    )


def write_exact(text: str) -> None:
    """Write to stdout with nothing added (no newline, no encoding surprises)."""
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
