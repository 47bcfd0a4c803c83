"""Chat templates: one interface (ChatTemplate), built-ins declared as data (Template), the tokenizer's
own jinja (TokenizerTemplate), and the registry."""

from ftkit.templates.base import ChatTemplate, Segment, TemplateError, token_variables
from ftkit.templates.registry import TOKENIZER, all_templates, get_template, register
from ftkit.templates.template import Reasoning, Template, Turn

__all__ = [
    "TOKENIZER",
    "ChatTemplate",
    "Reasoning",
    "Segment",
    "Template",
    "TemplateError",
    "Turn",
    "all_templates",
    "get_template",
    "register",
    "token_variables",
]
