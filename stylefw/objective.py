"""The objective: one backbone pass per evaluation feeding every loss term."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from stylefw.backbone import SequentialBackbone
from stylefw.loss import LossTerm


class Objective(nn.Module):
    """Sum of named loss terms over one shared backbone pass.

    Terms with weight 0 are dropped, and the backbone is truncated after the deepest layer
    any remaining term reads. Targets are computed once, under ``no_grad``, by
    :meth:`set_targets`.
    """

    def __init__(self, backbone: SequentialBackbone, terms: Mapping[str, LossTerm]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict({name: term for name, term in terms.items() if term.weight != 0})
        self.layers = tuple(dict.fromkeys(layer for term in self.terms.values() for layer in term.layers))
        backbone.truncate(self.layers)
        self.backbone = backbone

    def layers_for(self, target_image: str) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                layer for term in self.terms.values() if term.target_image == target_image for layer in term.layers
            )
        )

    @torch.no_grad()
    def set_targets(self, **images: torch.Tensor) -> None:
        """Compute each term's targets from the image it names (``content=...``, ``style=...``)."""
        for role, image in images.items():
            layers = self.layers_for(role)
            if not layers:
                continue
            features = self.backbone(image, layers)
            for term in self.terms.values():
                if term.target_image == role:
                    term.set_targets(features)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and each term's weighted value."""
        features = self.backbone(image, self.layers) if self.layers else {}
        parts = {name: term(features, image) for name, term in self.terms.items()}
        total = torch.stack(list(parts.values())).sum() if parts else image.new_zeros(())
        return total, parts

    def train(self, mode: bool = True) -> "Objective":
        # The backbone is frozen; Lightning's train() must not flip it (and VGG has no dropout/BN anyway).
        super().train(mode)
        self.backbone.eval()
        return self
