"""Creative controls around any method: several styles, style scale, colour preservation, a region mask.

The controls are top-level config keys (documented in conf/config.yaml and the README's
"Creative controls"). They act before and after the method, never inside it, so every method
gets them by going through :func:`stylefw.run.run`:

- before: :class:`stylefw.context.RunContext` hands the method *prepared* images: ``content`` is
  the content's luminance under ``preserve_color=luminance``; ``styles`` are loaded at
  ``size · style_scale``, and colour-matched to the content (``histogram``) or turned into
  luminance matched to the content's (``luminance``). ``original_content`` and
  ``original_styles`` keep the user's images.
- after: :func:`stylize` runs the method, puts the colours back (:func:`finish_colors`), runs a
  second pass for ``mask_style`` if one is set, and composites through the feathered
  ``content_mask`` (:mod:`stylefw.masks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, ListConfig

from stylefw.checks import check_fits_backbone
from stylefw.color import luminance_image, match_color_statistics, match_luminance, recombine_with_chroma
from stylefw.errors import StylefwError
from stylefw.images import resolve_image_path
from stylefw.masks import composite

if TYPE_CHECKING:
    from stylefw.context import RunContext
    from stylefw.method import Method, RunResult
    from stylefw.metrics import QualityMetrics
    from stylefw.objective import Objective

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
        """Read and check the keys; each bad value is a one-line StylefwError naming the fix."""
        styles = style_specs(cfg.get("style"))
        return cls(
            styles=styles,
            style_weights=check_style_weights(cfg.get("style_weights"), styles),
            style_scale=check_positive_number("style_scale", cfg.get("style_scale", 1.0),
                                              "e.g. 0.5 for finer strokes, 2 for larger ones"),
            preserve_color=check_preserve_color(cfg.get("preserve_color")),
            content_mask=optional_spec(cfg.get("content_mask")),
            mask_style=check_mask_style(cfg.get("mask_style"), cfg.get("content_mask")),
            mask_feather=check_feather(cfg.get("mask_feather", 8.0)),
        )

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


def check_positive_number(key: str, value: Any, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise StylefwError(f"{key}={value} must be a positive number ({example})")
    return float(value)


def check_preserve_color(value: Any) -> str | None:
    if value is None or str(value).lower() in ("none", "false", "off"):
        return None
    if value not in PRESERVE_COLOR_CHOICES:
        raise StylefwError(f"preserve_color={value} is not a colour mode: choose luminance, histogram or null (off)")
    return str(value)


def optional_spec(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value)


def check_mask_style(value: Any, content_mask: Any) -> str | None:
    spec = optional_spec(value)
    if spec is not None and optional_spec(content_mask) is None:
        raise StylefwError(f"mask_style={spec} styles the region outside content_mask, which is not set: "
                           "add content_mask=mask.png (white: the main style; black: mask_style)")
    return spec


def check_feather(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise StylefwError(f"mask_feather={value} must be a width in pixels >= 0 (0: a hard edge)")
    return float(value)


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, ListConfig) else str(value)


# --------------------------------------------------------------------------- before the method


def prepare_content(controls: CreativeControls, content: torch.Tensor) -> torch.Tensor:
    """What the method stylizes: the content, or its luminance as a grey image under ``preserve_color=luminance``."""
    return luminance_image(content) if controls.preserve_color == "luminance" else content


def prepare_style(controls: CreativeControls, style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """What the method takes the style from, given the user's `style` and `content` images.

    ``histogram``: the style's colours moved to the content's mean and covariance;
    ``luminance``: the style's luminance with the content luminance's mean and deviation.
    """
    if controls.preserve_color == "histogram":
        return match_color_statistics(style, content)
    if controls.preserve_color == "luminance":
        return match_luminance(style, content)
    return style


def check_styles_fit_backbone(objective: Objective, controls: CreativeControls, size: int) -> None:
    """Every style image (mask_style included), at ``size · style_scale``, survives to the deepest layer."""
    style_size = controls.style_size(size)
    for spec in (*controls.styles, *((controls.mask_style,) if controls.mask_style else ())):
        try:
            check_fits_backbone(objective, spec, "style", style_size)
        except StylefwError:
            if controls.style_scale == 1:
                raise
            raise StylefwError(
                f"style_scale={controls.style_scale:g} makes style '{spec}' {style_size} px on its longest side, "
                "too small for the backbone's deepest layer: raise style_scale (or size)"
            ) from None


# --------------------------------------------------------------------------- after the method


def restore_colors(mode: str | None, image: torch.Tensor, content: torch.Tensor, styles_used: bool) -> torch.Tensor:
    """A stylized `image` of `content` with the content's colours put back, as ``preserve_color=mode`` asks.

    ``luminance``: the image's luminance with the content's chroma. ``histogram``: nothing when the
    method took its style from the (colour-matched) style images (`styles_used`); otherwise (a
    trained network at stylize time) the image's colours are matched to the content's.
    """
    if mode == "luminance":
        return recombine_with_chroma(image, content)
    if mode == "histogram" and not styles_used:
        return match_color_statistics(image, content)
    return image


def finish_colors(context: RunContext, image: torch.Tensor) -> torch.Tensor:
    """:func:`restore_colors` for the result of a method run with `context`."""
    mode = context.controls.preserve_color
    if mode is None:
        return image
    return restore_colors(mode, image, context.original_content, context.styles_loaded)


def stylize(method: Method, context: RunContext) -> RunResult:
    """``method.run(context)`` with the creative controls applied around it.

    With ``content_mask`` the result is composited through the feathered mask with the content
    outside, or with the result of a second pass styled by ``mask_style`` (run without the
    logger; its losses go to ``result.extra["mask_style"]``, and ``steps`` counts both passes).
    An interrupted or failed first pass skips the second one and keeps the content outside.
    A result that is not a stylization of the content (``scored=False``: an overview of many
    photos) is left as it is. A method with ``supports_mask_style = False`` (one that cannot
    stylize with another style image, like a trained network) refuses ``mask_style`` before any work.
    """
    mask = context.content_mask  # loaded before any work, so a bad mask fails at once
    check_mask_style_supported(method, context.controls)
    result = method.run(context)
    if not result.scored:
        return result
    result.image = finish_colors(context, result.image)
    if mask is None:
        return result
    outside = context.original_content
    if context.controls.mask_style is not None and result.status == "completed":
        rest_context = context.for_styles([context.controls.mask_style])
        rest = method.run(rest_context)
        outside = finish_colors(rest_context, rest.image)
        merge_second_pass(result, rest)
    result.image = composite(result.image, outside, mask).clamp(0, 1)
    return result


def check_mask_style_supported(method: Method, controls: CreativeControls) -> None:
    if controls.mask_style is not None and not method.supports_mask_style:
        raise StylefwError(f"mask_style={controls.mask_style} needs a second stylization with that style, which "
                           f"{type(method).__name__} cannot do in this run: drop mask_style (content_mask alone keeps "
                           "the content outside the region) or use method=pixel")


def merge_second_pass(result: RunResult, rest: RunResult) -> None:
    """Record the mask_style pass in `result`; its interruption or failure becomes the run's."""
    result.extra["mask_style"] = {"loss": rest.losses, "steps": rest.steps, "status": rest.status}
    result.steps += rest.steps
    if rest.status != "completed":
        result.status, result.error = rest.status, rest.error
        result.extra.update({key: value for key, value in rest.extra.items() if key.startswith("failed_")})


def quality_scores(metrics: QualityMetrics, image: torch.Tensor, content: torch.Tensor,
                   styles: Sequence[torch.Tensor], weights: Sequence[float]) -> dict[str, float]:
    """The loss-independent scores of a result against the user's images.

    With several styles ``style_distance`` is the blend-weighted mean of the distances to each
    style, so runs with one and several styles stay comparable in a sweep.
    """
    if len(styles) == 1:
        return metrics(image, content, styles[0])
    distances = [metrics.style_distance(image, style) for style in styles]
    return {
        "style_distance": sum(weight * distance for weight, distance in zip(weights, distances)),
        "content_distance": metrics.content_distance(image, content),
    }
