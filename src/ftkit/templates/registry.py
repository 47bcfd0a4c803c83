"""The template registry: an explicit name -> Template table with duplicate checks."""

from __future__ import annotations

import difflib
from typing import Any

from ftkit.errors import UserError
from ftkit.templates.template import Template

_TEMPLATES: dict[str, Template] = {}
_ALIASES: dict[str, str] = {}


def register(template: Template) -> Template:
    """Add a template; a name or alias that is already taken is a programming error."""
    for name in (template.name, *template.aliases):
        if name in _TEMPLATES or name in _ALIASES:
            raise ValueError(f"template name {name!r} is registered twice")
    _TEMPLATES[template.name] = template
    for alias in template.aliases:
        _ALIASES[alias] = template.name
    return template


TOKENIZER = "tokenizer"
"""The name of the template that uses the model tokenizer's own jinja chat_template."""


def get_template(name: str, tokenizer: Any = None) -> Template:
    """The template called `name` (or an alias of it); unknown names are a user error with suggestions.

    `tokenizer` is needed for the `tokenizer` template, which renders with the tokenizer's own jinja.
    """
    if name == TOKENIZER:
        if tokenizer is None:
            raise UserError(
                "template tokenizer renders with a model's tokenizer; give one (--tokenizer PATH)"
            )
        from ftkit.templates.tokenizer import TokenizerTemplate

        return TokenizerTemplate(tokenizer)  # type: ignore[return-value]
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


def _load_builtins() -> None:
    # Importing the module registers the built-ins; kept lazy so that tests can build registries too.
    import ftkit.templates.builtins  # noqa: F401
