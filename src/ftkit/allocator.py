"""Keep freed memory in the process for the next step when training on a CPU.

A CPU training step allocates and frees the same large tensors (activations, logits, gradients) every
step. glibc's malloc serves blocks above its mmap threshold with fresh pages from the kernel and gives
them back on free, so every step pays page faults for memory it just returned, and it trims the heap
top as soon as a little is free. Raising the mmap threshold to glibc's maximum and the trim threshold
well above a step's working set lets the heap hand the same pages back step after step, as the
allocators PyTorch's CPU tuning guides recommend (jemalloc, tcmalloc) do. Peak memory does not grow
(bench/training.py measures it); memory freed after training is returned when the process ends.

Linux with glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = (
    (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest allowed value on 64-bit machines
    (_M_TRIM_THRESHOLD, 1 << 30),
    (_M_TOP_PAD, 64 << 20),
)


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for a training loop's repeated large allocations; True if it was applied."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    applied = all(libc.mallopt(option, value) == 1 for option, value in _SETTINGS)
    if applied:
        log.info("CPU allocator: freed blocks up to 32 MiB stay in the process for reuse (glibc mallopt)")
    return applied
