"""Keep secrets out of what ftkit writes: resolved recipes, run metadata, logs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)


def secret_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment values whose variable name marks them as secrets (long enough to be worth matching)."""
    return {value: name for name, value in environ.items() if _SECRET_NAME.search(name) and len(value) >= 6}


def redact(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of `data` with secrets from the environment and credentials in URLs replaced."""
    secrets = secret_values(os.environ if environ is None else environ)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        if isinstance(value, str):
            for secret, name in secrets.items():
                if secret in value:
                    value = value.replace(secret, f"<redacted ${name}>")
            return _URL_CREDENTIALS.sub(r"\g<scheme><redacted>@", value)
        return value

    return scrub(data)
