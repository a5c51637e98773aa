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
from stylefw.creative import CreativeControls, check_styles_fit_backbone, prepare_content, prepare_style
from stylefw.images import load_image
from stylefw.masks import feather, load_mask
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
    def controls(self) -> CreativeControls:
        """The checked creative-control keys (several styles, style_scale, preserve_color, content_mask)."""
        return CreativeControls.from_config(self.cfg)

    @cached_property
    def original_content(self) -> torch.Tensor:
        """The user's content image, 1x3xHxW in [0, 1], its longest side `size` pixels."""
        return load_image(self.cfg.content, self.cfg.size, role="content", max_pixels=self.cfg.max_image_pixels)

    @cached_property
    def content(self) -> torch.Tensor:
        """The image to stylize: `original_content`, or its luminance (grey) under ``preserve_color=luminance``."""
        return prepare_content(self.controls, self.original_content)

    @cached_property
    def original_styles(self) -> list[torch.Tensor]:
        """The user's style images, 1x3xHxW in [0, 1], each's longest side ``size · style_scale`` pixels."""
        size = self.controls.style_size(self.cfg.size)
        return [load_image(spec, size, role="style", max_pixels=self.cfg.max_image_pixels)
                for spec in self.controls.styles]

    @cached_property
    def styles(self) -> list[torch.Tensor]:
        """The style images to take targets from: `original_styles` colour- or luminance-matched to the content
        under ``preserve_color`` (see stylefw.creative.prepare_style)."""
        return [prepare_style(self.controls, style, self.original_content) for style in self.original_styles]

    @property
    def style(self) -> torch.Tensor:
        """The first (or only) of `styles`: for methods that take a single style image."""
        return self.styles[0]

    @property
    def style_weights(self) -> list[float]:
        """One blend weight per image of `styles`, summing to 1 (``style_weights``; equal by default)."""
        return list(self.controls.style_weights)

    @property
    def styles_loaded(self) -> bool:
        """Whether the method asked for the style images (a trained network at stylize time does not)."""
        return "styles" in self.__dict__

    @cached_property
    def content_mask(self) -> torch.Tensor | None:
        """The feathered ``content_mask`` at the content's size, 1x1xHxW in [0, 1] (1: stylize), or None."""
        if self.controls.content_mask is None:
            return None
        mask = load_mask(self.controls.content_mask, tuple(self.original_content.shape[-2:]),
                         self.cfg.max_image_pixels)
        return feather(mask, self.controls.mask_feather)

    def for_styles(self, styles: list[str]) -> RunContext:
        """A context for the same run with other (equally weighted) styles, sharing what does not depend on them."""
        other = RunContext(self.cfg, self.output_dir, logger=None)
        other.__dict__["controls"] = self.controls.with_styles(styles)
        for shared in ("original_content", "content", "objective", "optimizer"):
            if shared in self.__dict__:
                other.__dict__[shared] = self.__dict__[shared]
        return other

    @cached_property
    def objective(self) -> Objective:
        """The loss terms over one shared backbone pass; targets are set by the method (``set_targets``)."""
        objective = Objective(build(self.cfg.backbone, "backbone"), build_terms(self.cfg))
        check_fits_backbone(objective, self.cfg.content, "content", self.cfg.size)
        check_styles_fit_backbone(objective, self.controls, self.cfg.size)
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
