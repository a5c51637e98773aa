"""The Gram loss head as one autograd function: one matrix product forward, one backward.

Autograd differentiates ``mean((F Fᵀ/n − A)²)`` with three products per layer: ``F Fᵀ`` forward
and one per operand of ``F Fᵀ`` backward. Because the Gram matrix is symmetric, the gradient
needs only one:

    L = 1/(B·C²) · Σ (G − A)²,  G = F Fᵀ / n,  D = G − A
    ∂L/∂F = 2/(B·C²·n) · (D + Dᵀ) F        (= 4/(B·C²·n) · D F when A is symmetric)

On CPU the products go through oneDNN (as 1-D convolutions), which measured faster than the
BLAS ``mm`` on the wide early layers (``relu1_1``: 64 × 262144 at 512 px) on the machines here;
see benchmarks/README.md for the figures.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def self_product(flat: torch.Tensor) -> torch.Tensor:
    """``F Fᵀ`` for B×C×N `flat` features, B×C×C."""
    if flat.device.type != "cpu":
        return torch.bmm(flat, flat.transpose(1, 2))
    # conv1d with a length-N kernel over a length-N signal is a dot product per channel pair (oneDNN).
    channels, length = flat.shape[1:]
    return torch.stack([F.conv1d(item.view(channels, 1, length), item.view(channels, 1, length)).view(
        channels, channels) for item in flat])


def left_product(matrix: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """``M F`` for B×C×C `matrix` and B×C×N `flat`, B×C×N."""
    if flat.device.type != "cpu":
        return torch.bmm(matrix, flat)
    # A C×C matrix applied to every position is a 1×1 convolution (oneDNN).
    return torch.cat([F.conv1d(item[None], weights[..., None]) for item, weights in zip(flat, matrix)])


class GramMSE(torch.autograd.Function):
    """``mean((F Fᵀ/n − A)²)`` over B×C×C for B×C×H×W features F (n = C·H·W) and a C×C or B×C×C target A."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch, channels = features.shape[:2]
        flat = features.reshape(batch, channels, -1)
        norm = flat.shape[1] * flat.shape[2]
        difference = self_product(flat) / norm - target
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
            symmetric = difference + difference.transpose(1, 2)
            grad_features = (left_product(symmetric, flat) * (scale / ctx.norm)).reshape(ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_target = (-scale * difference).sum_to_size(ctx.target_shape)
        return grad_features, grad_target


def fused_gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """:func:`~stylefw.plugins.losses.gram.gram_loss`'s value, with one product per direction."""
    return GramMSE.apply(features, target_gram)
