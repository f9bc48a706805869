"""Keep freed tensor memory in the process on glibc (Linux), for CPU training.

A CPU training step allocates and frees hundreds of full-resolution maps (a few MB each). With
glibc's defaults blocks of that size are mmap'ed and returned to the kernel when freed, so every
new one page-faults its memory in again: about a third of the loss's time at 640x192 on a
2-core machine. Raising the mmap threshold to its maximum (32 MiB on 64-bit) and the trim
threshold makes the heap keep and reuse them (the effect of MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_, set from inside the process). Values are unchanged; the process keeps
up to ``TRIM_THRESHOLD`` of freed memory. Elsewhere (macOS, Windows, musl) this does nothing."""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds as above; returns whether both were accepted."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc is loaded
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
