"""Checks made before a run starts; each fails with the fix in one line."""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig

from stylefw.errors import StylefwError
from stylefw.images import fit_longest_side, planned_shape
from stylefw.objective import Objective


def term_configs(cfg: DictConfig) -> dict[str, Any]:
    """Each loss term's config node by its config key: content_loss, loss.<name>."""
    return {"content_loss": cfg.content_loss, **{f"loss.{name}": node for name, node in (cfg.loss or {}).items()}}


def weight_key(term: str) -> str:
    """The config key of a term's weight, from its name in the objective."""
    return "content_loss.weight" if term == "content" else f"loss.{term}.weight"


def check_term_weights(cfg: DictConfig) -> None:
    for key, term_cfg in term_configs(cfg).items():
        weight = term_cfg.get("weight", 1.0) if isinstance(term_cfg, DictConfig) else 1.0
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise StylefwError(f"{key}.weight={weight} must be a number >= 0 (0 turns the term off)")


def check_fits_backbone(objective: Objective, spec: str, role: str, size: int) -> None:
    """Fail early, naming the smallest working size, if an image is too small for the deepest layer a term reads.

    Each pooling (or strided) layer up to that layer halves the image; a side shorter than the
    product of their strides vanishes before it.
    """
    needed = 1
    for layer in getattr(objective.backbone, "layers", ()):
        stride = getattr(layer, "stride", 1)
        needed *= max(stride) if isinstance(stride, tuple) else int(stride)
    height, width = planned_shape(spec, None, role, max_pixels=None)
    if min(fit_longest_side((width, height), size)) >= needed:
        return
    smallest = math.ceil(needed * max(height, width) / min(height, width))
    while min(fit_longest_side((width, height), smallest)) < needed:  # rounding of the short side
        smallest += 1
    shape = "x".join(map(str, fit_longest_side((width, height), size)))
    or_crop = ", or a less elongated image" if width != height else ""
    raise StylefwError(
        f"at size={size} the {role} image becomes {shape} px, but the backbone's deepest layer needs at least "
        f"{needed} px on each side: use size={smallest} or more{or_crop}"
    )


def check_optimizer(optimizer: Any) -> None:
    """Build the optimizer once on a dummy parameter, so a bad option (optimizer.lr=-1) fails before any work."""
    try:
        optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as error:
        raise StylefwError(f"optimizer could not be built ({' '.join(str(error).split())}): fix the optimizer.* "
                           "option it names (`stylefw --cfg job` shows them)") from None
