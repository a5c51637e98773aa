"""Gram-matrix style loss (Gatys, Ecker & Bethge 2015/2016)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .fused_gram import fused_gram_loss
from stylefw.loss import FeatureMatchingLoss

GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Normalized Gram matrix ``G = F Fᵀ / (C·H·W)`` of B×C×H×W features, shape B×C×C.

    ``F`` is the features reshaped to C × (H·W). Gatys et al. use the unnormalized ``F Fᵀ``
    and put ``1/(4 C² M²)`` in the loss; dividing by ``C·H·W`` here (as Johnson's
    neural-style does) makes the Gram independent of image size, so the same weights work
    at every resolution.
    """
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return torch.bmm(flat, flat.transpose(1, 2)) / (channels * height * width)


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """``E = 1/C² · Σ_ij (G_ij − A_ij)²``: mean squared difference between the Gram matrix of
    `features` and the target Gram `A` (Gatys et al. 2016, Eq. 4, with the normalization of
    :func:`gram_matrix`). `target_gram` broadcasts over the batch."""
    return (gram_matrix(features) - target_gram).pow(2).mean()


class GramLoss(FeatureMatchingLoss):
    """Matches the style image's Gram matrices at `layers` (default relu1_1 … relu5_1, weights 1/5 each)."""

    target_image = "style"

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = GATYS_STYLE_LAYERS,
                 layer_weights: Sequence[float] | None = None) -> None:
        super().__init__(weight, layers, layer_weights)

    def represent(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return gram_matrix(feature)

    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        return fused_gram_loss(feature, target)  # gram_loss's value, with one matrix product per direction
