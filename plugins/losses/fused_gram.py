"""The Gram loss head as one autograd function: one matrix product forward, one backward.

Autograd differentiates ``mean((F Fᵀ/n − A)²)`` with three products per layer: ``F Fᵀ`` forward
and one per operand of ``F Fᵀ`` backward. Because the Gram matrix is symmetric, the gradient
needs only one:

    L = 1/(B·C²) · Σ (G − A)²,  G = F Fᵀ / n,  D = G − A
    ∂L/∂F = 2/(B·C²·n) · (D + Dᵀ) F        (= 4/(B·C²·n) · D F when A is symmetric)

The products are batched BLAS matrix products. A oneDNN path (the products as 1-D
convolutions) was dropped: per Gram product it measured 1.0-1.5x faster than ``mm`` on the
Intel Xeon here (about 2x on an AMD EPYC, per the project notes), and Gram heads were about
16 % of a step then (NCHW backbone; 0.09x the channels-last floor at 256² now, their products at
180-310 GFLOP/s), so it could save a few % of a step; but at 1024 px its reordered
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
            symmetric = (difference + difference.transpose(1, 2)).mul_(scale / ctx.norm)
            grad_features = gram_gradient(symmetric, flat, ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_target = (-scale * difference).sum_to_size(ctx.target_shape)
        return grad_features, grad_target


def gram_gradient(symmetric: torch.Tensor, flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``S F`` for B×C×C `symmetric` S and B×C×N `flat` F, as a fresh tensor of `shape` in F's memory layout.

    Fresh and not a view, so autograd can add the backbone's gradient for the same activation into it in place
    (a view made it allocate a third activation-sized tensor for the sum: 5 ms of a 0.37 s step at 256²). With
    channels-last features, ``(S F)ᵀ = Fᵀ S`` is computed straight into the NHWC memory.
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
    """:func:`~stylefw.plugins.losses.gram.gram_loss`'s value, with one product per direction."""
    return GramMSE.apply(features, target_gram)
