"""Method base: how a run turns content, style and an objective into an image."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylefw.objective import Objective

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
TrainerFactory = Callable[..., Any]  # (max_steps=..., callbacks=[...], **overrides) -> pytorch_lightning.Trainer


@dataclass
class RunContext:
    """Everything the core prepares for a method: images, objective and the Lightning plumbing."""

    content: torch.Tensor
    style: torch.Tensor
    objective: Objective
    optimizer: OptimizerFactory
    make_trainer: TrainerFactory
    logger: Any
    output_dir: Path


@dataclass
class RunResult:
    image: torch.Tensor
    losses: dict[str, float]
    steps: int
    status: str = "completed"  # or "interrupted"
    extra: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """A `method` plugin. Instantiated from ``conf/method/<name>.yaml``; ``run`` does the work."""

    @abstractmethod
    def run(self, context: RunContext) -> RunResult:
        """Produce the stylized image."""
