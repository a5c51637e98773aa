"""What the core offers a method: the config, the images, the objective and the Lightning plumbing.

Everything expensive is built on first use, so a method that needs no backbone or no style
image (stylizing with a trained net) never loads one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from stylefw.builders import build, build_terms
from stylefw.checks import check_fits_backbone, check_optimizer
from stylefw.images import load_image
from stylefw.objective import Objective
from stylefw.training import make_trainer

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class RunContext:
    """The run's inputs and plugins, built from `cfg` when a method first asks for them.

    Attributes:
        cfg: the composed config (methods read their own node and top-level keys such as ``size``).
        output_dir: the run's folder; everything the run writes goes there.
        logger: the experiment logger, or None.
    """

    def __init__(self, cfg: DictConfig, output_dir: Path, logger: Any) -> None:
        self.cfg = cfg
        self.output_dir = output_dir
        self.logger = logger

    @cached_property
    def content(self) -> torch.Tensor:
        """The content image, 1x3xHxW in [0, 1], its longest side `size` pixels."""
        return load_image(self.cfg.content, self.cfg.size, role="content", max_pixels=self.cfg.max_image_pixels)

    @cached_property
    def style(self) -> torch.Tensor:
        """The style image, 1x3xHxW in [0, 1], its longest side `size` pixels."""
        return load_image(self.cfg.style, self.cfg.size, role="style", max_pixels=self.cfg.max_image_pixels)

    @cached_property
    def objective(self) -> Objective:
        """The loss terms over one shared backbone pass; targets are set by the method (``set_targets``)."""
        objective = Objective(build(self.cfg.backbone, "backbone"), build_terms(self.cfg))
        for role in ("content", "style"):
            check_fits_backbone(objective, self.cfg[role], role, self.cfg.size)
        return objective

    @cached_property
    def optimizer(self) -> OptimizerFactory:
        """``optimizer(parameters) -> torch.optim.Optimizer`` from the `optimizer` group."""
        factory = build(self.cfg.optimizer, "optimizer", _partial_=True)
        check_optimizer(factory)
        return factory

    def make_trainer(self, **kwargs: Any) -> Any:
        """A quiet pytorch_lightning.Trainer with the `trainer` group's options and the run's logger."""
        return make_trainer(self.cfg.trainer, logger=self.logger, default_root_dir=self.output_dir, **kwargs)
