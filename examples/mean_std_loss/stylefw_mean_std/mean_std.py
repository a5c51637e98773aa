"""Per-channel mean and standard deviation matching (Li, Wang, Liu & Hou 2017, "Demystifying Neural Style Transfer")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylefw.objective.terms import FeatureMatchingLoss

STD_EPSILON = 1e-5
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def channel_mean_std(features: torch.Tensor) -> torch.Tensor:
    """Mean ``μ_c`` and standard deviation ``σ_c = sqrt(Var_c + ε)`` of each channel over the H·W
    positions of B×C×H×W features, stacked as B×2×C.

    The variance is the population one (divide by H·W); ``ε = 1e-5`` (as in AdaIN) keeps the
    gradient finite for channels that are constant, e.g. a ReLU that never fires.
    """
    flat = features.flatten(2)
    mean = flat.mean(dim=2)
    std = (flat.var(dim=2, unbiased=False) + STD_EPSILON).sqrt()
    return torch.stack([mean, std], dim=1)


def mean_std_loss(features: torch.Tensor, target_statistics: torch.Tensor) -> torch.Tensor:
    """``E = 1/C · Σ_c [(μ_c − μ'_c)² + (σ_c − σ'_c)²]`` between the statistics of `features` and the
    target's (from :func:`channel_mean_std`; broadcasts over the batch, whose mean is taken).

    This is the per-layer "BN statistics matching" style loss of Li et al. 2017, with ``ε``
    inside the standard deviation; Huang & Belongie 2017 (AdaIN) use the unsquared L2 norms
    of the two differences instead.
    """
    return (channel_mean_std(features) - target_statistics).pow(2).sum(dim=1).mean()


class MeanStdLoss(FeatureMatchingLoss):
    """Matches the style image's per-channel feature means and standard deviations at `layers`.

    Several style images blend by the weighted mean of their statistics (the base class's
    default), which for the standard deviations approximates, not equals, that of the mixture.
    """

    target_image = "style"

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = STYLE_LAYERS,
                 layer_weights: Sequence[float] | None = None) -> None:
        super().__init__(weight, layers, layer_weights)

    def represent(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return channel_mean_std(feature)

    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        return mean_std_loss(feature, target)
