"""The template registry: an explicit name -> template table with duplicate checks, filled from the
built-in declarations (templates/builtins.py) on first use; `register` adds more."""

from __future__ import annotations

import difflib
from typing import Any

from ftkit.errors import UserError
from ftkit.templates.base import ChatTemplate
from ftkit.templates.template import Template

_TEMPLATES: dict[str, Template] = {}
_ALIASES: dict[str, str] = {}


def register(template: Template) -> Template:
    """Add a template; a name or alias that is already taken (built-ins included) is a programming error."""
    _load_builtins()
    for name in (template.name, *template.aliases):
        if name in _TEMPLATES or name in _ALIASES:
            raise ValueError(f"template name {name!r} is registered twice")
    _TEMPLATES[template.name] = template
    for alias in template.aliases:
        _ALIASES[alias] = template.name
    return template


TOKENIZER = "tokenizer"
"""The name of the template that uses the model tokenizer's own jinja chat_template."""


def get_template(name: str, tokenizer: Any = None) -> ChatTemplate:
    """The template called `name` (or an alias of it); unknown names are a user error with suggestions.

    `tokenizer` is needed for the `tokenizer` template, which renders with the tokenizer's own jinja.
    """
    if name == TOKENIZER:
        if tokenizer is None:
            raise UserError(
                "template tokenizer renders with a model's tokenizer; give one (--tokenizer PATH)"
            )
        from ftkit.templates.tokenizer import TokenizerTemplate

        return TokenizerTemplate(tokenizer)
    _load_builtins()
    key = _ALIASES.get(name, name)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    choices = [*_TEMPLATES, *_ALIASES, TOKENIZER]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"unknown chat template {name!r}{hint}; `ftkit template list` shows the available ones")


def all_templates() -> list[Template]:
    _load_builtins()
    return list(_TEMPLATES.values())


_LOADED: list[bool] = []


def _load_builtins() -> None:
    """Register the built-in declarations once, on first use (so that importing the registry is cheap)."""
    if _LOADED:
        return
    _LOADED.append(True)  # before registering: register() calls back here
    from ftkit.templates.builtins import BUILTINS

    for template in BUILTINS:
        register(template)
