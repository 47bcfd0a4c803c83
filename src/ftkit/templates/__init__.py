"""Chat templates as data: the Template type, the registry, and the built-in formats."""

from ftkit.templates.registry import all_templates, get_template, register
from ftkit.templates.template import Segment, Template, TemplateError, Turn

__all__ = ["Segment", "Template", "TemplateError", "Turn", "all_templates", "get_template", "register"]
