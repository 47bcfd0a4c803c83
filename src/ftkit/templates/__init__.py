"""Chat templates as data: the Template type, the registry, and the built-in formats."""

from ftkit.templates.registry import TOKENIZER, all_templates, get_template, register
from ftkit.templates.template import Reasoning, Segment, Template, TemplateError, Turn

__all__ = [
    "TOKENIZER",
    "Reasoning",
    "Segment",
    "Template",
    "TemplateError",
    "Turn",
    "all_templates",
    "get_template",
    "register",
]
