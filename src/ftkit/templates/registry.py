"""The template registry: an explicit name -> Template table with duplicate checks."""

from __future__ import annotations

import difflib

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


def get_template(name: str) -> Template:
    """The template called `name` (or an alias of it); unknown names are a user error with suggestions."""
    _load_builtins()
    key = _ALIASES.get(name, name)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    choices = [*_TEMPLATES, *_ALIASES]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"unknown chat template {name!r}{hint}; `ftkit template list` shows the available ones")


def all_templates() -> list[Template]:
    _load_builtins()
    return list(_TEMPLATES.values())


def _load_builtins() -> None:
    # Importing the module registers the built-ins; kept lazy so that tests can build registries too.
    import ftkit.templates.builtins  # noqa: F401
