"""The process's resources: the device a run uses, the memory still free there, the run's peak, and the allocator.

- :func:`training_device` and :func:`available_memory_bytes`: a run too big for its device fails at once
  instead of being killed.
- :func:`reset_peak_memory` and :func:`peak_memory_mb`: the peak of one run, even when a process runs several
  (joblib's worker processes run job after job). ``getrusage().ru_maxrss`` is the high-water mark of the
  whole process; on Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``
  in ``/proc/self/status``) to the current resident size. Elsewhere the process-wide figure is reported.
- :func:`freed_memory_kept`: each optimisation step allocates and frees the same activation-sized tensors.
  glibc returns freed heap memory to the system once more than its trim threshold is free at the heap's
  top, so the next step page-faults those pages in again. Within a run, allocations up to 32 MiB (glibc's
  largest mmap threshold) come from the heap and the heap is not trimmed. Larger tensors stay separate
  mappings: served from the heap, torch's 64-byte-aligned requests left freed blocks unused and the heap
  grew (docs/performance.md has the measurements).
"""

from __future__ import annotations

import ctypes
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

_CGROUP_ROOT = Path("/sys/fs/cgroup")
# (limit, usage, reclaimable page-cache counter in memory.stat) for cgroup v2, then v1.
_CGROUP_FILES = (("memory.max", "memory.current", "inactive_file"),
                 ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a huge number, v2 as "max"


def training_device(accelerator: str) -> torch.device:
    """The device Lightning will pick for `trainer.accelerator` (auto, cpu, gpu, cuda, mps)."""
    accelerator = str(accelerator).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_memory_bytes(device: torch.device | str) -> int | None:
    """Bytes a run can still allocate on `device`, or None where that cannot be told (then nothing is checked)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        known = [value for value in (_meminfo_available(), _cgroup_headroom()) if value is not None]
        return min(known) if known else None
    return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """limit - usage + reclaimable cache of this process's memory cgroup (containers: docker --memory)."""
    for folder in _cgroup_folders():
        for limit_name, usage_name, cache_name in _CGROUP_FILES:
            limit, usage = _read_int(folder / limit_name), _read_int(folder / usage_name)
            if limit is not None and usage is not None and limit < _NO_LIMIT:
                return max(0, limit - usage + _stat_value(folder / "memory.stat", cache_name))
    return None


def _cgroup_folders() -> list[Path]:
    """This process's own cgroup folders first, then the mount roots (what a container sees as its own)."""
    folders = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                folders.append(_CGROUP_ROOT / path.lstrip("/"))
            elif "memory" in controllers.split(","):
                folders.append(_CGROUP_ROOT / "memory" / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return [*folders, _CGROUP_ROOT, _CGROUP_ROOT / "memory"]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return _NO_LIMIT if text == "max" else int(text) if text.isdigit() else None


def _stat_value(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0

# ------------------------------------------------------------------ peak memory

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_RESET_HIGH_WATER_MARK = "5"  # see proc(5), /proc/pid/clear_refs


def reset_peak_memory() -> bool:
    """Start measuring the peak from now (RSS on Linux, and GPU memory); False if the RSS peak cannot be reset."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        _CLEAR_REFS.write_text(_RESET_HIGH_WATER_MARK)
    except OSError:
        return False
    return _high_water_mark_kb() is not None


def _high_water_mark_kb() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_kb() -> int:
    """The resident-set peak since the last reset_peak_memory() (Linux), else since the process started."""
    high_water_mark = _high_water_mark_kb()
    if high_water_mark is not None:
        return high_water_mark
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss // 1024 if sys.platform == "darwin" else max_rss  # macOS counts bytes, Linux kilobytes


def peak_memory_mb() -> dict[str, float]:
    """``peak_rss_mb`` (and ``peak_gpu_mb`` on CUDA) since the last reset_peak_memory(), for metrics.json."""
    memory = {"peak_rss_mb": round(peak_rss_kb() / 1024, 1)}
    if torch.cuda.is_available():
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory

# ------------------------------------------------------------------ allocator

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
LARGEST_MMAP_THRESHOLD = 32 * 2**20  # glibc's cap on 64-bit systems
KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the heap is trimmed only when 2 GiB at its top are free
# After the block: where glibc's own adaptive thresholds settle once a process has freed a large block (the mmap
# threshold rises to the freed size, capped at 32 MiB; the trim threshold to twice that). Setting any threshold
# ends the adaptation for good, and glibc's start values (128 KiB) would then send every later tensor above
# 128 KiB to fresh pages, slowing torch code run after a stylefw run in the same process.
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
