"""Histogram loss (Risser, Wilmot & Barnes 2017, "Stable and Controllable Neural Texture Synthesis and
Style Transfer Using Histogram Losses", arXiv 1701.08893)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylefw.objective.terms import FeatureMatchingLoss

RISSER_HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")


def sorted_activations(features: torch.Tensor) -> torch.Tensor:
    """Each channel's activations over all positions of the batch, sorted: B×C×H×W → C×(B·H·W).

    This is the channel's empirical quantile function, the representation the histogram loss
    matches against."""
    channels = features.shape[1]
    return features.transpose(0, 1).reshape(channels, -1).sort(dim=-1).values


def resample_quantiles(sorted_values: torch.Tensor, length: int) -> torch.Tensor:
    """The quantile function `sorted_values` (…×M, sorted along the last dim) read at `length`
    evenly spaced levels ``q_r = r / (length − 1)``, with linear interpolation between samples.

    Sample ``k`` of M sits at level ``k / (M − 1)`` (numpy's default ``linear`` quantile), so
    ``resample_quantiles(s, M)`` returns ``s`` unchanged and the minimum and maximum are kept at
    every length. A single level reads the median.
    """
    size = sorted_values.shape[-1]
    if length == size:
        return sorted_values
    if length == 1:
        levels = sorted_values.new_full((1,), 0.5)
    else:
        levels = torch.linspace(0.0, 1.0, length, dtype=sorted_values.dtype, device=sorted_values.device)
    position = levels * (size - 1)
    below = position.floor().long().clamp(max=size - 1)
    above = (below + 1).clamp(max=size - 1)
    fraction = position - below.to(position.dtype)
    return torch.lerp(sorted_values[..., below], sorted_values[..., above], fraction)


@torch.no_grad()
def histogram_match(features: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """``R(O)``: `features` (B×C×H×W) with, per image and channel, each activation replaced by the
    target quantile at its rank, so every channel takes the target's histogram exactly while keeping
    its own spatial order. `target_sorted` is C×M (see :func:`sorted_activations`).

    The ``r``-th smallest of the N = H·W activations gets the target's quantile at level
    ``r / (N − 1)`` (:func:`resample_quantiles`); when N = M that is exactly the target's ``r``-th
    smallest value. Ties are broken by position (stable sort). One sort and one scatter per
    channel, vectorised over batch and channels: O(B·C·N log N) time, O(B·C·N) memory.
    """
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    order = flat.argsort(dim=-1, stable=True)
    quantiles = resample_quantiles(target_sorted.to(flat.dtype), height * width)
    matched = torch.empty_like(flat).scatter_(-1, order, quantiles.expand(batch, -1, -1))
    return matched.reshape(features.shape)


def histogram_loss(features: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """``E = 1/(B·C·N) · Σ (O − R(O))²`` with ``R(O)`` = :func:`histogram_match` held constant.

    Risser et al. (Sec. 4.3) define ``L = Σ_i ‖O_i − R(O_i)‖²_F`` per layer and channel and
    recompute ``R(O)`` at every step without differentiating through it, so the gradient is
    ``2(O − R(O))/(B·C·N)``: each activation is pulled toward the value of the same rank in the
    target. Deviations: the paper matches 256-bin histograms; this matches exactly (sort-based
    quantile matching, interpolating the target's quantile function when sizes differ). The mean
    replaces the paper's sum so the weight does not depend on image size.
    Cost per layer: O(C·N log N) for the sort.
    """
    return (features - histogram_match(features, target_sorted)).pow(2).mean()


def wasserstein_barycenter(sorted_values: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Per-channel 1-D Wasserstein-2 barycenter of several C×M_k quantile functions.

    In 1-D the barycenter's quantile function is the weighted mean of the quantile functions, so
    each is resampled to the longest length (:func:`resample_quantiles`) and averaged. The mean of
    sorted rows is sorted, so the result is again a quantile function.
    """
    length = max(values.shape[-1] for values in sorted_values)
    return sum(weight * resample_quantiles(values, length) for weight, values in zip(weights, sorted_values))


class HistogramLoss(FeatureMatchingLoss):
    """Matches each channel's activation histogram to the style's at `layers` (default relu1_1 and
    relu4_1, weights 1/2 each). Meant to be added to the Gram loss: ``loss=gram+hist+tv``, where the
    config's weight 1e3 changes the result visibly without taking it over (docs/losses.md; the paper's
    weights, and its gradient normalisation, are not reproduced).

    Several style images blend into their per-channel Wasserstein barycenter (the weighted mean
    of their quantile functions, :func:`wasserstein_barycenter`), not the weighted mean of raw
    sorted values, which would be undefined when the images differ in size.
    """

    target_image = "style"

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = RISSER_HISTOGRAM_LAYERS,
                 layer_weights: Sequence[float] | None = None) -> None:
        super().__init__(weight, layers, layer_weights)

    def represent(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return sorted_activations(feature)

    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        return histogram_loss(feature, target)

    def blend(self, representations: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        return wasserstein_barycenter(representations, weights)
