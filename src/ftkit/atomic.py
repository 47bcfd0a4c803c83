"""Write outputs so that a failed or killed process never leaves something that looks complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftkit.errors import UserError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to a temporary sibling, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def atomic_directory(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to fill; on success it replaces `target`, on failure it is removed.

    An existing non-empty `target` is an error unless `force`.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not force:
        raise UserError(f"{target} already exists and is not empty; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
