"""Content loss (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylefw.objective.terms import FeatureMatchingLoss


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference ``L_c = 1/(C·H·W) · Σ_ij (F_ij − P_ij)²``.

    Gatys et al. 2016 (Eq. 1) use ``½ Σ_ij (F_ij − P_ij)²``; the mean instead of the half-sum
    keeps the weight independent of image size. `target` broadcasts over the batch.
    """
    return (features - target).pow(2).mean()


class ContentLoss(FeatureMatchingLoss):
    """Keeps the content image's features at `layers` (default ``relu4_2``, as Gatys et al.)."""

    target_image = "content"

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = ("relu4_2",),
                 layer_weights: Sequence[float] | None = None) -> None:
        super().__init__(weight, layers, layer_weights)

    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        return content_loss(feature, target)
