"""The tokenized-data cache: processed datasets on disk, keyed by a hash of everything that shapes them.

The key covers the data (file contents, or the fingerprint of the loaded hub data), the registry entries,
the data section of the recipe, the stage, the seed, the tokenizer (vocabulary, special tokens, chat
template), the chat template and ftkit's pipeline version. Entries are written to a temporary sibling
and renamed, so a killed run never leaves an entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ftkit import __version__
from ftkit.atomic import atomic_directory, remove_stale_temporaries

log = logging.getLogger(__name__)

PIPELINE_VERSION = 3
"""Bump when the processing of examples changes in a way the other key parts do not capture."""
REPORT_FILE = "report.json"


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = {
        "vocab": backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items()),
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "added": sorted(tokenizer.get_added_vocab().items()),
        "chat_template": getattr(tokenizer, "chat_template", None),
        "class": type(tokenizer).__name__,
    }
    payload = json.dumps(state, sort_keys=True, default=str).encode("utf-8")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    payload = json.dumps(
        {"pipeline": PIPELINE_VERSION, "ftkit": __version__, **parts}, sort_keys=True, default=str
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


class DataCache:
    """A folder of cache entries, one per key: `<key>/<split>/` datasets and `<key>/report.json`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: str) -> Path:
        return self.directory / key

    def load(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The cached splits and report, or None when there is no complete entry."""
        import datasets

        entry = self.path(key)
        report_path = entry / REPORT_FILE
        if not report_path.is_file():
            return None
        report = json.loads(report_path.read_text(encoding="utf-8"))
        splits = {name: datasets.load_from_disk(str(entry / name)) for name in report["splits"]}
        log.info("reusing tokenized data from the cache (%s)", entry)
        return splits, report

    def save(self, key: str, splits: dict[str, Any], report: dict[str, Any]) -> Path:
        entry = self.path(key)
        remove_stale_temporaries(self.directory)  # entries whose writer was killed
        with atomic_directory(entry, force=True) as staging:
            for name, dataset in splits.items():
                dataset.save_to_disk(str(staging / name))
            (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log.info("cached the tokenized data in %s", entry)
        return entry
