"""Loss-term base classes. Built-in and third-party terms subclass these; the objective sums them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from stylefw.errors import StylefwError

TargetImage = Literal["content", "style"]


class LossTerm(nn.Module, ABC):
    """One weighted term of the objective.

    Subclasses name the backbone `layers` they read and, if they compare against a
    reference, which image provides it (`target_image`). The objective runs the backbone
    once per step over the union of every term's layers and calls each term with the
    resulting ``{layer: activation}`` mapping and the image itself.
    """

    target_image: ClassVar[TargetImage | None] = None

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = ()) -> None:
        super().__init__()
        self.weight = float(weight)
        self.layers = tuple(layers)

    def set_targets(self, features: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> None:
        """Store what the term compares against, computed once from the target images' features.

        `features` holds one ``{layer: activation}`` mapping per target image (several style
        images blend), `weights` their blend weights, summing to 1.
        """

    @abstractmethod
    def forward(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The weighted value of this term (a scalar)."""

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, layers={list(self.layers)}"


class FeatureMatchingLoss(LossTerm):
    """Template for terms that compare a per-layer representation of the image with a fixed target.

    ``loss = weight * sum_l w_l * distance(represent(F_l), represent(T_l))`` where ``T_l`` are the
    target image's features, represented once and kept as non-persistent buffers (they follow
    ``.to(device)`` and stay out of checkpoints). ``layer_weights`` defaults to ``1/L`` each.
    """

    def __init__(
        self,
        weight: float = 1.0,
        layers: Sequence[str] = (),
        layer_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(weight, layers)
        if not self.layers:
            raise StylefwError(f"{type(self).__name__} needs at least one layer: set its `layers` list")
        if layer_weights is None:
            layer_weights = [1.0 / len(self.layers)] * len(self.layers)
        if len(layer_weights) != len(self.layers):
            raise StylefwError(
                f"{type(self).__name__}: {len(layer_weights)} layer_weights for {len(self.layers)} layers: "
                "give one weight per layer or leave layer_weights unset"
            )
        self.layer_weights = tuple(float(w) for w in layer_weights)

    def represent(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        """The statistic compared at `layer` (identity by default); `layer` serves terms configured per layer."""
        return feature

    @abstractmethod
    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        """Unweighted distance between the image's raw `feature` at `layer` and the stored `target` representation."""

    def blend(self, representations: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        """One target from the representations of several target images; `weights` sum to 1.

        The weighted mean, which is what blending means for averaged statistics such as Gram
        matrices. Terms whose representation does not average meaningfully override this.
        """
        return sum(weight * representation for weight, representation in zip(weights, representations))

    def set_targets(self, features: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> None:
        for layer in self.layers:
            representations = [self.represent(example[layer], layer).detach() for example in features]
            target = representations[0] if len(representations) == 1 else self.blend(representations, weights)
            self.register_buffer(self._buffer_name(layer), target, persistent=False)

    def target(self, layer: str) -> torch.Tensor:
        try:
            return getattr(self, self._buffer_name(layer))
        except AttributeError:
            raise RuntimeError(f"{type(self).__name__}: targets were never set") from None

    def forward(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total = sum(
            w * self.distance(features[layer], self.target(layer), layer)
            for layer, w in zip(self.layers, self.layer_weights)
        )
        return self.weight * total

    @staticmethod
    def _buffer_name(layer: str) -> str:
        return f"target_{layer}"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layer_weights={list(self.layer_weights)}"
