"""The Gram loss head as one autograd function: one matrix product forward, one backward.

Autograd differentiates ``mean((F Fᵀ/n − A)²)`` with three products per layer: ``F Fᵀ`` forward
and one per operand of ``F Fᵀ`` backward. Because the Gram matrix is symmetric, the gradient
needs only one:

    L = 1/(B·C²) · Σ (G − A)²,  G = F Fᵀ / n,  D = G − A
    ∂L/∂F = 2/(B·C²·n) · (D + Dᵀ) F        (= 4/(B·C²·n) · D F when A is symmetric)

The products are batched BLAS matrix products. A oneDNN path (the products as 1-D
convolutions) was dropped: per Gram product it measured 1.0-1.5x faster than ``mm`` on the
Intel Xeon here (about 2x on an AMD EPYC, per the project notes), and Gram heads are about
16 % of a step, so it could save a few % of a step; but at 1024 px its reordered
64 x 1M "kernel" for relu1_1 added 3.3 GB of peak memory, against 1.7 GB for the whole
forward and backward pass with bmm.
"""

from __future__ import annotations

from typing import Any

import torch


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
            symmetric = difference + difference.transpose(1, 2)
            grad_features = (torch.bmm(symmetric, flat) * (scale / ctx.norm)).reshape(ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_target = (-scale * difference).sum_to_size(ctx.target_shape)
        return grad_features, grad_target


def fused_gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """:func:`~stylefw.plugins.losses.gram.gram_loss`'s value, with one product per direction."""
    return GramMSE.apply(features, target_gram)
