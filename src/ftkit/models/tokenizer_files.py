"""A tokenizer read from its files with the `tokenizers` library alone (no transformers, no torch): what
`ftkit check` and the start of `ftkit train` use to check a chat template against the tokenizer before
any weights load. Training itself loads the tokenizer with transformers and checks again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.models.sources import in_hub_cache, read_json

FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def _token(value: Any) -> str | None:
    if isinstance(value, dict):  # older tokenizer_config.json files write AddedToken objects
        value = value.get("content")
    return value if isinstance(value, str) and value else None


@dataclass
class TokenizerFiles:
    """Enough of a tokenizer for checks: encode text, its special tokens, its chat template."""

    backend: Any
    config: dict[str, Any]
    chat_template: str | None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    @property
    def bos_token(self) -> str | None:
        return _token(self.config.get("bos_token"))

    @property
    def eos_token(self) -> str | None:
        return _token(self.config.get("eos_token"))


def _paths(name: str, revision: str | None) -> dict[str, Path]:
    folder = Path(name).expanduser()
    if folder.is_dir():
        return {file: folder / file for file in FILES if (folder / file).is_file()}
    found = {file: in_hub_cache(name, file, revision=revision) for file in FILES}
    return {file: Path(path) for file, path in found.items() if path}


def read_tokenizer_files(name: str, revision: str | None = None) -> TokenizerFiles | None:
    """The tokenizer of a local folder or a cached hub id; None when it has no tokenizer.json here (a
    hub id not downloaded yet, or a slow-only tokenizer): training then checks after loading it."""
    paths = _paths(name, revision)
    if "tokenizer.json" not in paths:
        return None
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(paths["tokenizer.json"]))
    except Exception:  # a format this tokenizers version cannot read: leave it to transformers
        return None
    config = (
        read_json(paths["tokenizer_config.json"], "tokenizer config")
        if "tokenizer_config.json" in paths
        else {}
    )
    template = config.get("chat_template")
    if "chat_template.jinja" in paths:
        template = paths["chat_template.jinja"].read_text(encoding="utf-8")
    return TokenizerFiles(backend, config, template if isinstance(template, str) and template else None)
