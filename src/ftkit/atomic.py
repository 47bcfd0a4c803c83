"""Write outputs so that a failed or killed process never leaves something that looks complete.

A folder is filled under a temporary sibling `.<name>.tmp-<pid>` and renamed into place. A process
killed before the rename leaves that sibling behind; the next writer removes such leftovers of dead
processes (and says so), so they neither pile up nor pass for output.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftkit.errors import UserError

log = logging.getLogger(__name__)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(tmp|old)-(?P<pid>\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary siblings (of `name`, or of anything) in `folder` whose writing process is gone."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        match = _TEMPORARY.match(child.name)
        if (
            not match
            or (name is not None and match.group("name") != name)
            or pid_alive(int(match.group("pid")))
        ):
            continue
        log.warning("removing %s: left incomplete by a process that was killed while writing it", child)
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child)
    return removed


def _umask() -> int:
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: read it without changing it
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(folder: str | Path) -> None:
    """Give the files under `folder` the permissions the user's umask grants new files.

    safetensors writes its files readable by their owner only (0600), while everything else a run
    writes gets the umask's modes (usually 0644): a model shared by a team would half-open.
    """
    mode = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)


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
    remove_stale_temporaries(target.parent, target.name)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    apply_umask(tmp)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
