"""What a method is: given a :class:`RunContext` (the config, the images, the objective, the Lightning
plumbing), it returns a :class:`RunResult`. The run builds both; a `method` plugin subclasses :class:`Method`.

Everything expensive in the context is built on first use, so a method that needs no backbone or no
style image (stylizing with a trained net) never loads one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from stylefw.controls import CreativeControls
from stylefw.errors import StylefwError, build
from stylefw.image.io import load_image, planned_shape
from stylefw.image.masks import feather, load_mask
from stylefw.objective.objective import Objective
from stylefw.objective.terms import LossTerm
from stylefw.runtime.lightning import finish_logger, make_trainer
from stylefw.runtime.resources import available_memory_bytes, training_device

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


def build_terms(cfg: DictConfig) -> dict[str, LossTerm]:
    """The always-on content term plus every term selected in the `loss` group, keyed by name."""
    terms = {"content": build(cfg.content_loss, "content_loss")}
    for name, term_cfg in (cfg.loss or {}).items():
        if name in terms:
            raise StylefwError(f"loss term name '{name}' is reserved for content_loss: rename the loss option")
        terms[name] = build(term_cfg, f"loss.{name}")
    for name, term in terms.items():
        if not isinstance(term, LossTerm):
            raise StylefwError(f"loss term '{name}' built a {type(term).__name__}, not a "
                               "stylefw.objective.terms.LossTerm")
    return terms


def build_logger(cfg: DictConfig, output_dir: Path) -> Any:
    """The `logger` group's experiment logger with the run's config as its hyperparameters; None for logger=none."""
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return None
    logger = build(cfg.logger, "logger", save_dir=str(output_dir))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


@dataclass
class RunResult:
    """What a method returns; the run composites it, scores it and writes it with its metrics."""

    image: torch.Tensor
    losses: dict[str, float | None]
    steps: int
    status: str = "completed"  # or "interrupted", or "failed" (then `error` says why; `image` is the last good one)
    error: str | None = None
    failed_terms: list[str] = field(default_factory=list)  # loss terms that became non-finite: their weights are the fix
    name: str | None = None  # file name of `image` in the run folder (None: <content>_<style>.png)
    references: tuple[torch.Tensor, torch.Tensor] | None = None  # (content, style) to score against; None: the run's
    scored: bool = True  # False: `image` is not a stylization of one content (an overview): no quality scores
    files: list[str] = field(default_factory=list)  # other outputs the run wrote, named in its final line
    report: dict[str, Any] = field(default_factory=dict)  # the method's own entries for metrics.json


class RunContext:
    """The run's inputs and plugins, built from `cfg` when a method first asks for them.

    Attributes:
        cfg: the composed config (methods read their own node and top-level keys such as ``size``).
        output_dir: the run's folder; everything the run writes goes there.
        controls: the checked creative controls (parsed from `cfg` when not given).
    """

    def __init__(self, cfg: DictConfig, output_dir: Path, controls: CreativeControls | None = None) -> None:
        self.cfg = cfg
        self.output_dir = output_dir
        self.controls = controls if controls is not None else CreativeControls.from_config(cfg)

    @cached_property
    def logger(self) -> Any:
        """The experiment logger (None for ``logger=none``), created when first used."""
        return build_logger(self.cfg, self.output_dir)

    def close_logger(self, status: str) -> None:
        """Flush and close the logger if the run created one."""
        if "logger" in self.__dict__:
            finish_logger(self.logger, status)

    @cached_property
    def original_content(self) -> torch.Tensor:
        """The user's content image, 1x3xHxW in [0, 1], its longest side `size` pixels."""
        return load_image(self.cfg.content, self.cfg.size, role="content", max_pixels=self.cfg.max_image_pixels)

    @cached_property
    def content(self) -> torch.Tensor:
        """The image to stylize: `original_content`, or its luminance (grey) under ``preserve_color=luminance``."""
        return self.controls.prepare_content(self.original_content)

    @cached_property
    def original_styles(self) -> list[torch.Tensor]:
        """The user's style images, 1x3xHxW in [0, 1], each's longest side ``size · style_scale`` pixels."""
        size = self.controls.style_size(self.cfg.size)
        return [load_image(spec, size, role="style", max_pixels=self.cfg.max_image_pixels)
                for spec in self.controls.styles]

    @cached_property
    def styles(self) -> list[torch.Tensor]:
        """The style images to take targets from: `original_styles` colour- or luminance-matched to the content
        under ``preserve_color`` (:meth:`CreativeControls.prepare_style`)."""
        return [self.controls.prepare_style(style, self.original_content) for style in self.original_styles]

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

    def restore_colors(self, image: torch.Tensor) -> torch.Tensor:
        """A result of this context's method with the content's colours put back as ``preserve_color`` asks
        (:meth:`CreativeControls.restore_colors`)."""
        return self.controls.restore_colors(image, self.original_content, self.styles_loaded)

    @cached_property
    def content_mask(self) -> torch.Tensor | None:
        """The feathered ``content_mask`` at the content's size, 1x1xHxW in [0, 1] (1: stylize), or None."""
        if self.controls.content_mask is None:
            return None
        mask = load_mask(self.controls.content_mask, tuple(self.original_content.shape[-2:]),
                         self.cfg.max_image_pixels)
        return feather(mask, self.controls.mask_feather)

    def for_styles(self, styles: list[str]) -> RunContext:
        """A context for the same run with other (equally weighted) styles and no logger, sharing what does not
        depend on the styles."""
        other = RunContext(self.cfg, self.output_dir, self.controls.with_styles(styles))
        other.__dict__["logger"] = None
        for shared in ("original_content", "content", "objective", "optimizer"):
            if shared in self.__dict__:
                other.__dict__[shared] = self.__dict__[shared]
        return other

    @cached_property
    def objective(self) -> Objective:
        """The loss terms over one shared backbone pass; targets are set by the method (``set_targets``)."""
        objective = Objective(build(self.cfg.backbone, "backbone"), build_terms(self.cfg))
        objective.check_fits(self.cfg.content, "content", self.cfg.size)
        self.controls.check_fit(objective, self.cfg.size)
        return objective

    @cached_property
    def optimizer(self) -> OptimizerFactory:
        """``optimizer(parameters) -> torch.optim.Optimizer`` from the `optimizer` group (its YAML sets
        ``_partial_: true``), tried once on a dummy parameter so a bad option fails before any work."""
        if not self.cfg.optimizer.get("_partial_"):
            raise StylefwError("the optimizer's config needs `_partial_: true`: the method builds the optimizer for "
                               "its own parameters (see conf/optimizer/adam.yaml)")
        factory = build(self.cfg.optimizer, "optimizer")
        try:
            factory([torch.nn.Parameter(torch.zeros(1))])
        except (TypeError, ValueError) as error:
            raise StylefwError(f"optimizer could not be built ({' '.join(str(error).split())}): fix the optimizer.* "
                               "option it names (`stylefw --cfg job` shows them)") from None
        return factory

    @property
    def device(self) -> torch.device:
        """The device Lightning places the run on (``trainer.accelerator``)."""
        return training_device(self.cfg.trainer.get("accelerator", "auto"))

    def make_trainer(self, **kwargs: Any) -> Any:
        """A quiet pytorch_lightning.Trainer with the `trainer` group's options and the run's logger."""
        return make_trainer(self.cfg.trainer, logger=self.logger, default_root_dir=self.output_dir, **kwargs)


class Method(ABC):
    """A `method` plugin. Instantiated from ``conf/method/<name>.yaml``; ``run`` does the work."""

    modes: tuple[str, ...] = ("stylize",)  # values of the top-level `mode` key it takes; the first is its default
    supports_mask_style = True  # False: run() cannot make a second stylization with another style (mask_style)

    @abstractmethod
    def run(self, context: RunContext) -> RunResult:
        """Produce the stylized image."""

    def planned_shape(self, context: RunContext) -> tuple[int, int] | None:
        """(height, width) of the image the run will make, for :meth:`check_resources`; None: nothing to check."""
        cfg = context.cfg
        return planned_shape(cfg.content, cfg.size, role="content", max_pixels=cfg.max_image_pixels)

    def peak_memory_bytes(self, height: int, width: int, context: RunContext) -> int | None:
        """Memory this method will add while making a `height` x `width` image in `context` (with its optimizer,
        say); None: unknown (nothing checked). Called before anything big is built: stay on the safe side."""
        return None

    def check_resources(self, context: RunContext) -> None:
        """Fail at once, naming the largest size that fits, if the run would not fit in its device's free memory."""
        planned = self.planned_shape(context)
        needed = self.peak_memory_bytes(*planned, context) if planned is not None else None
        available = available_memory_bytes(context.device) if needed is not None else None
        if needed is None or available is None or needed <= available:
            return
        height, width = planned
        longest = max(height, width)
        fits = _largest_fitting_side(lambda side: self.peak_memory_bytes(*_scaled(height, width, side), context),
                                     longest, available)
        advice = f"use size={fits} or less" if fits else "free memory or use a machine with more"
        raise StylefwError(
            f"size={longest} needs about {needed / 2**30:.1f} GiB of memory for {type(self).__name__} "
            f"but {available / 2**30:.1f} GiB is free on {context.device.type}: {advice} (or close other programs)"
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
