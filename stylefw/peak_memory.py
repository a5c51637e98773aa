"""Peak memory of one run, even when a process runs several (joblib's worker processes run job after job).

``getrusage().ru_maxrss`` is the high-water mark of the whole process: in a worker that ran a
big job before a small one it reports the big one's peak. On Linux, writing ``5`` to
``/proc/self/clear_refs`` resets the high-water mark (``VmHWM`` in ``/proc/self/status``) to
the current resident size, so a run that resets it first reads its own peak. Elsewhere (or
where /proc is not writable) the process-wide figure is reported.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

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
