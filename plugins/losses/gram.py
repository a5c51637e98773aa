"""Gram-matrix style loss (Gatys, Ecker & Bethge 2015/2016), with its head as one autograd function.

Autograd differentiates ``mean((F Fᵀ/n − A)²)`` with three products per layer: ``F Fᵀ`` forward
and one per operand of ``F Fᵀ`` backward. Because the Gram matrix is symmetric, the gradient
needs only one:

    L = 1/(B·C²) · Σ (G − A)²,  G = F Fᵀ / n,  D = G − A
    ∂L/∂F = 2/(B·C²·n) · (D + Dᵀ) F        (= 4/(B·C²·n) · D F when A is symmetric)

The products are batched BLAS matrix products (:class:`GramMSE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stylefw.objective.terms import FeatureMatchingLoss

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


class GramMSE(torch.autograd.Function):
    """``mean((F Fᵀ/n − A)²)`` over B×C×C for B×C×H×W features F (n = C·H·W) and a C×C or B×C×C target A."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch, channels = features.shape[:2]
        flat = features.reshape(batch, channels, -1)
        norm = flat.shape[1] * flat.shape[2]
        difference = torch.bmm(flat, flat.transpose(1, 2)) / norm - target
        ctx.save_for_backward(flat, difference)
        ctx.norm, ctx.shape, ctx.target_shape = norm, features.shape, target.shape
        return difference.pow(2).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        flat, difference = ctx.saved_tensors
        batch, channels = flat.shape[:2]
        scale = grad * 2 / (batch * channels * channels)
        grad_features = grad_target = None
        if ctx.needs_input_grad[0]:
            symmetric = (difference + difference.transpose(1, 2)).mul_(scale / ctx.norm)
            grad_features = gram_gradient(symmetric, flat, ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_target = (-scale * difference).sum_to_size(ctx.target_shape)
        return grad_features, grad_target


def gram_gradient(symmetric: torch.Tensor, flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``S F`` for B×C×C `symmetric` S and B×C×N `flat` F, as a fresh tensor of `shape` in F's memory layout.

    Fresh and not a view, so autograd can add the backbone's gradient for the same activation into it in place
    (for a view it allocates a third activation-sized tensor for the sum). With channels-last features,
    ``(S F)ᵀ = Fᵀ S`` is computed straight into the NHWC memory.
    """
    batch, channels = flat.shape[:2]
    if flat.stride(1) == 1 and channels > 1:  # channels-last
        grad = torch.empty(shape, dtype=flat.dtype, device=flat.device, memory_format=torch.channels_last)
        torch.bmm(flat.transpose(1, 2), symmetric, out=grad.permute(0, 2, 3, 1).view(batch, -1, channels))
    else:
        grad = flat.new_empty(shape)
        torch.bmm(symmetric, flat, out=grad.view(batch, channels, -1))
    return grad


def fused_gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """:func:`gram_loss`'s value, with one product per direction."""
    return GramMSE.apply(features, target_gram)


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
