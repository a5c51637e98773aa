"""Method base: how a run turns content, style and an objective into an image."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from stylefw.errors import StylefwError
from stylefw.context import OptimizerFactory, RunContext
from stylefw.images import planned_shape
from stylefw.resources import available_memory_bytes

__all__ = ["Method", "OptimizerFactory", "RunContext", "RunResult"]


@dataclass
class RunResult:
    image: torch.Tensor
    losses: dict[str, float | None]
    steps: int
    status: str = "completed"  # or "interrupted", or "failed" (then `error` says why; `image` is the last good one)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    name: str | None = None  # file name of `image` in the run folder (None: <content>_<style>.png)
    references: tuple[torch.Tensor, torch.Tensor] | None = None  # (content, style) to score against; None: the run's
    scored: bool = True  # False: `image` is not a stylization of one content (an overview): no quality scores
    files: list[str] = field(default_factory=list)  # other outputs the run wrote, named in its final line


class Method(ABC):
    """A `method` plugin. Instantiated from ``conf/method/<name>.yaml``; ``run`` does the work."""

    modes: tuple[str, ...] = ("stylize",)  # values of the top-level `mode` key it takes; the first is its default
    supports_mask_style = True  # False: run() cannot make a second stylization with another style (mask_style)

    @abstractmethod
    def run(self, context: RunContext) -> RunResult:
        """Produce the stylized image."""

    def planned_shape(self, cfg: DictConfig) -> tuple[int, int] | None:
        """(height, width) of the image the run will make, for :meth:`check_resources`; None: nothing to check."""
        return planned_shape(cfg.content, cfg.size, role="content", max_pixels=cfg.max_image_pixels)

    def peak_memory_bytes(self, height: int, width: int, cfg: DictConfig | None = None) -> int | None:
        """Memory this method will add while making a `height` x `width` image under the run's `cfg` (its
        optimizer, say); None: unknown (nothing checked).

        Called before anything big is built, so it should stay on the safe side.
        """
        return None

    def check_resources(self, height: int, width: int, device: torch.device, cfg: DictConfig | None = None) -> None:
        """Fail at once, naming the largest size that fits, if the run would not fit in `device`'s free memory."""
        needed = self.peak_memory_bytes(height, width, cfg)
        available = available_memory_bytes(device) if needed is not None else None
        if needed is None or available is None or needed <= available:
            return
        longest = max(height, width)
        fits = _largest_fitting_side(lambda side: self.peak_memory_bytes(*_scaled(height, width, side), cfg), longest,
                                     available)
        advice = f"use size={fits} or less" if fits else "free memory or use a machine with more"
        raise StylefwError(
            f"size={longest} needs about {needed / 2**30:.1f} GiB of memory for {type(self).__name__} "
            f"but {available / 2**30:.1f} GiB is free on {device.type}: {advice} (or close other programs)"
        )


def _scaled(height: int, width: int, longest: int) -> tuple[int, int]:
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _largest_fitting_side(estimate: Callable[[int], int | None], upper: int, available: int) -> int:
    """Largest longest side in [1, upper) whose estimate fits in `available` bytes (0 if none); by bisection."""
    low, high = 0, upper
    while high - low > 1:
        middle = (low + high) // 2
        if (estimate(middle) or 0) <= available:
            low = middle
        else:
            high = middle
    return low
