"""Keep freed large CPU blocks in the process (Linux glibc) instead of returning them and page-faulting new ones.

glibc's malloc serves blocks above its mmap threshold (128 KiB at process start, raised on the fly up to 32 MiB
as large blocks are freed) with fresh pages and trims free heap above a trim threshold back to the system. Each
new large tensor then pays one page fault per 4 KiB page when it is first written, and how often that happens
depends on the process's allocation history, so the same layer can run at very different speeds in two
processes and a measured path choice can flip. :func:`retain_freed_memory` fixes both thresholds
(``mallopt``; the same as starting Python with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set):
blocks up to 32 MiB come from the heap and up to 128 MiB of free heap is kept for reuse.

The ``kernelkit`` command and the benchmark harness call it at start (so both sides of a benchmark comparison
run with the same allocator); library users may call it once themselves. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "retain_freed_memory"]

MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for the dynamic threshold
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process; ``True`` when applied (Linux with glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
