"""Run untrusted Python (a model's completion) in a separate, limited process: never in the trainer's.

Each program runs in a fresh `python -I` (isolated: no user site, no PYTHON* variables) in an empty
temporary folder, with an empty environment, a wall-clock timeout, CPU-time, address-space, file-size and
process-count limits, and no network: a new network namespace where the kernel allows one (Linux
unshare of user and network namespaces), and in any case the socket module disabled before the program
starts. A program passes when it exits with status 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

_GUARD = """
import ctypes, resource, socket, sys
memory, cpu, file_size, processes = map(int, sys.argv[1:5])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
    libc.unshare(0x40000000)  # root without user namespaces; the guard below covers the rest
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
socket.socket = socket.create_connection = socket.getaddrinfo = _no_network
del ctypes, resource, socket, libc, _no_network
program = sys.stdin.read()
sys.argv = ["<completion>"]
exec(compile(program, "<completion>", "exec"), {"__name__": "__main__"})
"""
# The limits are set by the child itself, before it reads the program: a preexec_fn would not be safe in
# the trainer's process, which runs threads.


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0
    memory_mb: int = 512
    max_processes: int = 16
    max_file_mb: int = 16


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str
    """"passed", "failed" (nonzero exit), "timeout"."""
    stderr: str = ""


def run_python(program: str, limits: Limits = Limits()) -> Outcome:
    """Run `program` in a sandboxed interpreter; it passes when it exits 0 within the limits."""
    with tempfile.TemporaryDirectory(prefix="ftkit-sandbox-") as folder:
        sizes = [limits.memory_mb * 2**20, int(limits.timeout_s) + 1, limits.max_file_mb * 2**20]
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _GUARD, *map(str, [*sizes, limits.max_processes])],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=folder,
            env={"PATH": "/usr/bin:/bin", "HOME": folder, "TMPDIR": folder},
            start_new_session=True,  # its own process group: a timeout kills whatever it started too
            text=True,
        )
        try:
            _, stderr = process.communicate(program, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.communicate()
            return Outcome(False, "timeout")
    if process.returncode == 0:
        return Outcome(True, "passed")
    return Outcome(False, "failed", stderr[-2000:])


def run_many(programs: list[str], limits: Limits = Limits(), workers: int | None = None) -> list[Outcome]:
    """run_python over several programs at once (one sandbox each), in order."""
    workers = workers or max(1, min(len(programs), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda program: run_python(program, limits), programs))
