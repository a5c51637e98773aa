"""How much memory a run can still use on its device, so a run too big for it fails at once instead of being killed."""

from __future__ import annotations

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
