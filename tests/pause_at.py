"""Run `ftkit ARGS...` with one function made to stop, so that a test can kill the process at that exact
point: at the function's Nth call (before or after it runs) this writes a marker file and waits.

    python -m tests.pause_at MODULE:QUALNAME N before|after MARKER ftkit-args...

A SIGINT while waiting raises KeyboardInterrupt there, as Ctrl-C would mid-run. Tests use
`start_paused` and `kill` rather than this script directly.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_paused(
    work: Path, target: str, calls: int, when: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`ftkit ARGS` in a subprocess that stops at `target`'s `calls`th call; returns once it has stopped."""
    marker = work / f"paused-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "tests.pause_at", target, str(calls), when, str(marker), *args]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"ended before the pause: {process.stderr.read()[-3000:]}")
        assert time.time() < deadline, "never reached the pause"
        time.sleep(0.05)
    marker.unlink()
    return process


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: the process gets no chance to clean up."""
    process.send_signal(signal.SIGKILL)
    process.communicate()


def main() -> int:
    target, calls, when, marker, *argv = sys.argv[1:]
    # A shell without job control starts background commands with SIGINT ignored, and Python keeps an
    # ignored SIGINT: restore what a terminal's Ctrl-C reaches, however the test suite was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    module_name, _, qualname = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, attribute = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, attribute)
    count = 0

    def pause() -> None:
        Path(marker).write_text("paused")
        while True:
            time.sleep(0.05)

    def paused(*args, **kwargs):
        nonlocal count
        count += 1
        if count == int(calls) and when == "before":
            pause()
        result = original(*args, **kwargs)
        if count == int(calls) and when == "after":
            pause()
        return result

    setattr(owner, attribute, paused)
    from ftkit.cli import main as ftkit

    return ftkit(argv)


if __name__ == "__main__":
    sys.exit(main())
