"""Creative controls: the keys that act around any method, parsed and checked once per run.

- ``style`` (one image or several) and ``style_weights``: several styles blend their targets.
- ``style_scale``: the style images' longest side is ``size · style_scale`` pixels.
- ``preserve_color``: ``luminance`` (transfer on the luminance, put the content's chroma back) or
  ``histogram`` (give the style the content's colour statistics first), Gatys et al. 2017, section 5.
- ``content_mask``, ``mask_style``, ``mask_feather``: stylize only inside a region (white), with the
  content or a second style outside it, through a soft edge (:mod:`stylefw.image.masks`).

:class:`CreativeControls` is built once by the run (:meth:`CreativeControls.from_config`) and handed
to the method's context. Before the method it prepares the images the method stylizes and takes its
style from (:meth:`~CreativeControls.prepare_content`, :meth:`~CreativeControls.prepare_style`); after
it, the run puts the colours back (:meth:`~CreativeControls.restore_colors`), runs a second pass for
``mask_style`` and composites through the mask (``stylefw.run``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from stylefw.errors import StylefwError, check_choice, check_number
from stylefw.image.color import luminance_image, match_color_statistics, match_luminance, recombine_with_chroma
from stylefw.image.io import resolve_image_path
from stylefw.objective.objective import Objective

PRESERVE_COLOR_CHOICES = ("luminance", "histogram")


@dataclass(frozen=True)
class CreativeControls:
    """The creative-control keys of a config, checked (:meth:`from_config`).

    Attributes:
        styles: the style image specs (paths or bundled names), at least one.
        style_weights: one blend weight per style, normalised to sum to 1.
        style_scale: the style images' longest side is ``size · style_scale`` pixels.
        preserve_color: None, ``luminance`` or ``histogram``.
        content_mask: the region mask's spec, or None (stylize everywhere).
        mask_style: the style for the rest of the image, or None (keep the content there).
        mask_feather: width of the mask's soft edge, in output pixels.
    """

    styles: tuple[str, ...]
    style_weights: tuple[float, ...]
    style_scale: float = 1.0
    preserve_color: str | None = None
    content_mask: str | None = None
    mask_style: str | None = None
    mask_feather: float = 8.0

    @classmethod
    def from_config(cls, cfg: DictConfig) -> CreativeControls:
        """Read and check the keys, and that every image they name exists; each problem is a one-line
        StylefwError naming the fix."""
        styles = style_specs(cfg.get("style"))
        controls = cls(
            styles=styles,
            style_weights=check_style_weights(cfg.get("style_weights"), styles),
            style_scale=check_number("style_scale", cfg.get("style_scale", 1.0), above=0,
                                     hint="e.g. 0.5 for finer strokes, 2 for larger ones"),
            preserve_color=check_preserve_color(cfg.get("preserve_color")),
            content_mask=optional_spec(cfg.get("content_mask")),
            mask_style=check_mask_style(cfg.get("mask_style"), cfg.get("content_mask")),
            mask_feather=check_number("mask_feather", cfg.get("mask_feather", 8.0), least=0,
                                      hint="a width in pixels; 0: a hard edge"),
        )
        controls.check_files()
        return controls

    def with_styles(self, styles: Sequence[str]) -> CreativeControls:
        """The same controls for another, equally weighted, list of styles (the ``mask_style`` pass)."""
        return replace(self, styles=tuple(styles), style_weights=(1.0 / len(styles),) * len(styles))

    def style_size(self, size: int) -> int:
        """Longest side, in pixels, of the style images for an output whose longest side is `size`."""
        return max(1, round(size * self.style_scale))

    def check_files(self) -> None:
        """Fail at once if a style or mask file named does not exist (before anything is built)."""
        for spec in self.styles:
            resolve_image_path(spec, "style")
        if self.mask_style is not None:
            resolve_image_path(self.mask_style, "mask_style")
        if self.content_mask is not None:
            resolve_image_path(self.content_mask, "content_mask")

    def check_fit(self, objective: Objective, size: int) -> None:
        """Every style image (mask_style included), at ``size · style_scale``, survives to the deepest layer."""
        for spec in (*self.styles, *((self.mask_style,) if self.mask_style else ())):
            try:
                objective.check_fits(spec, "style", self.style_size(size))
            except StylefwError:
                if self.style_scale == 1:
                    raise
                raise StylefwError(
                    f"style_scale={self.style_scale:g} makes style '{spec}' {self.style_size(size)} px on its longest "
                    "side, too small for the backbone's deepest layer: raise style_scale (or size)"
                ) from None

    def check_method(self, method: Any) -> None:
        """Refuse ``mask_style`` for a method that cannot make a second stylization with another style."""
        if self.mask_style is not None and not method.supports_mask_style:
            raise StylefwError(f"mask_style={self.mask_style} needs a second stylization with that style, which "
                               f"{type(method).__name__} cannot do in this run: drop mask_style (content_mask alone "
                               "keeps the content outside the region) or use method=pixel")

    # ----------------------------------------------------------------------- before the method

    def prepare_content(self, content: torch.Tensor) -> torch.Tensor:
        """What the method stylizes: the content, or its luminance as a grey image under ``preserve_color=luminance``."""
        return luminance_image(content) if self.preserve_color == "luminance" else content

    def prepare_style(self, style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """What the method takes the style from, given the user's `style` and `content` images.

        ``histogram``: the style's colours moved to the content's mean and covariance;
        ``luminance``: the style's luminance with the content luminance's mean and deviation.
        """
        if self.preserve_color == "histogram":
            return match_color_statistics(style, content)
        if self.preserve_color == "luminance":
            return match_luminance(style, content)
        return style

    # ----------------------------------------------------------------------- after the method

    def restore_colors(self, image: torch.Tensor, content: torch.Tensor, styles_used: bool) -> torch.Tensor:
        """A stylized `image` of `content` with the content's colours put back, as ``preserve_color`` asks.

        ``luminance``: the image's luminance with the content's chroma. ``histogram``: nothing when the
        method took its style from the (colour-matched) style images (`styles_used`); otherwise (a
        trained network at stylize time) the image's colours are matched to the content's.
        """
        if self.preserve_color == "luminance":
            return recombine_with_chroma(image, content)
        if self.preserve_color == "histogram" and not styles_used:
            return match_color_statistics(image, content)
        return image


def style_specs(value: Any) -> tuple[str, ...]:
    """`style` as a tuple of specs: one path or bundled name, or a list of them (``style=[a.jpg,b.jpg]``)."""
    specs = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    if not specs or any(spec is None or not str(spec).strip() for spec in specs):
        raise StylefwError(f"style={_show(value)} names no image: give an image path or bundled name, "
                           "or a list of them (style=[a.jpg,b.jpg])")
    if any(isinstance(spec, (list, tuple, ListConfig, dict, DictConfig)) for spec in specs):
        raise StylefwError(f"style={_show(value)} must be an image or a flat list of images (style=[a.jpg,b.jpg])")
    return tuple(str(spec) for spec in specs)


def check_style_weights(value: Any, styles: Sequence[str]) -> tuple[float, ...]:
    """One non-negative weight per style, not all zero, normalised to sum to 1 (None: equal weights)."""
    if value is None:
        return (1.0 / len(styles),) * len(styles)
    weights = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
    if len(weights) != len(styles) or not numbers or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise StylefwError(
            f"style_weights={_show(value)} does not fit {len(styles)} style image(s) ({', '.join(styles)}): give "
            f"one non-negative weight per style, not all zero (e.g. style_weights=[{','.join(['1'] * len(styles))}])"
        )
    return tuple(float(w) / sum(weights) for w in weights)


def check_preserve_color(value: Any) -> str | None:
    if value is None or str(value).lower() in ("none", "false", "off"):
        return None
    return check_choice("preserve_color", value, PRESERVE_COLOR_CHOICES, "or null: off")


def optional_spec(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value)


def check_mask_style(value: Any, content_mask: Any) -> str | None:
    spec = optional_spec(value)
    if spec is not None and optional_spec(content_mask) is None:
        raise StylefwError(f"mask_style={spec} styles the region outside content_mask, which is not set: "
                           "add content_mask=mask.png (white: the main style; black: mask_style)")
    return spec


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, ListConfig) else str(value)
