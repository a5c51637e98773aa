"""Total-variation regularizer (Mahendran & Vedaldi 2015, β = 2; as in Johnson's neural-style)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from stylefw.objective.terms import LossTerm


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Squared anisotropic TV of B×C×H×W pixels in [0, 1]:
    ``mean_ij (x_i,j+1 − x_i,j)² + mean_ij (x_i+1,j − x_i,j)²``.

    Means (not sums) keep the weight independent of image size; neural-style sums and
    scales pixels to 0–255, so its weights are not comparable with these.
    """
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    vertical = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    return horizontal + vertical


class TotalVariationLoss(LossTerm):
    """Penalizes differences between neighbouring pixels, suppressing high-frequency noise."""

    def forward(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return self.weight * total_variation(image)
