"""Keep secrets out of what ftkit writes and prints: recipes, run metadata, logs, trackers, messages.

A secret is the value of an environment variable whose name marks it as one (WANDB_API_KEY, HF_TOKEN,
...), or the credentials of a URL. Recipes are redacted where they are loaded, before any value reaches
a library (TrainingArguments, wandb, tensorboard); messages and logs are redacted where they are printed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)
MIN_SECRET_LENGTH = 6
"""Shorter values are not matched: they would redact ordinary words."""


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment values whose variable name marks them as secrets, longest first."""
    environ = os.environ if environ is None else environ
    found = {
        value: name
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


def redact_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    for secret, name in secret_values(environ).items():
        if secret in text:
            text = text.replace(secret, f"<redacted ${name}>")
    return _URL_CREDENTIALS.sub(r"\g<scheme><redacted>@", text)


def redact(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of `data` with secrets from the environment and credentials in URLs replaced."""
    if isinstance(data, dict):
        return {key: redact(item, environ) for key, item in data.items()}
    if isinstance(data, list | tuple):
        return [redact(item, environ) for item in data]
    if isinstance(data, str):
        return redact_text(data, environ)
    return data


def redacted_keys(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of `data` whose values hold a secret (what `redact` would change)."""
    if isinstance(data, dict):
        return [key for name, item in data.items() for key in redacted_keys(item, f"{prefix}{name}.")]
    if isinstance(data, list | tuple):
        return [key for index, item in enumerate(data) for key in redacted_keys(item, f"{prefix}{index}.")]
    if isinstance(data, str) and redact_text(data) != data:
        return [prefix.rstrip(".")]
    return []


class RedactingFilter(logging.Filter):
    """Redacts every log record's message (with its arguments filled in) before a handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
