"""The objective: one backbone pass per evaluation feeding every loss term."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from stylefw.errors import StylefwError
from stylefw.image.filters import fit_longest_side
from stylefw.image.io import planned_shape
from stylefw.objective.backbone import SequentialBackbone
from stylefw.objective.terms import LossTerm


def normalized_weights(weights: Sequence[float] | None, count: int, role: str) -> list[float]:
    """`weights` scaled to sum to 1 (equal weights when None)."""
    if weights is None:
        return [1.0 / count] * count
    weights = [float(weight) for weight in weights]
    if len(weights) != count or any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise StylefwError(
            f"{role} weights {weights} do not fit {count} {role} image(s): give one non-negative weight per image"
        )
    return [weight / sum(weights) for weight in weights]


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
        depth = {layer: index for index, layer in enumerate(backbone.layer_names)}
        self.evaluation_order = sorted(
            self.terms, key=lambda name: min((depth[layer] for layer in self.terms[name].layers), default=len(depth))
        )

    def layers_for(self, target_image: str) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                layer for term in self.terms.values() if term.target_image == target_image for layer in term.layers
            )
        )

    @torch.no_grad()
    def set_targets(self, weights: Mapping[str, Sequence[float]] | None = None,
                    **images: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Compute each term's targets from the image(s) it names (``content=...``, ``style=...``).

        A role may get several images (``style=[a, b]``); terms then blend their targets with
        ``weights[role]`` (normalized to sum to 1; equal weights when not given).
        """
        for role, given in images.items():
            layers = self.layers_for(role)
            if not layers:
                continue
            examples = [given] if isinstance(given, torch.Tensor) else list(given)
            features = [self.backbone(image, layers) for image in examples]
            blend = normalized_weights((weights or {}).get(role), len(examples), role)
            for term in self.terms.values():
                if term.target_image == role:
                    term.set_targets(features, blend)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and each term's weighted value.

        The backbone runs as the terms read their layers, the terms taking turns from the shallowest layer
        they read. So a term's head on relu1_1 is built before relu2_1 is computed, and autograd, which
        runs the most recently built ready node first, computes each head's gradient only when the
        backward reaches its layer, instead of holding every head's activation-sized gradient from the
        start of the backward, which would be the peak of the step's memory (docs/performance.md, "Memory").

        Under autocast (bf16 training) the backbone's convolutions run in the low precision and the
        terms in float32: Gram matrices and histograms sum over every position of a layer, which bf16's
        8-bit mantissa would round away.
        """
        device = image.device.type
        low_precision = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        features = LazyFeatures(self.backbone.activations(image, self.layers), self.layers, device, low_precision)
        with torch.autocast(device, enabled=False):
            computed = {name: self.terms[name](features, image.float()) for name in self.evaluation_order}
            parts = {name: computed[name] for name in self.terms}
            total = torch.stack(list(parts.values())).sum() if parts else image.new_zeros((), dtype=torch.float32)
        return total, parts

    def smallest_side(self) -> int:
        """The shortest image side, in pixels, that survives to the deepest layer any term reads: each pooling
        (or strided) layer up to it halves the image."""
        needed = 1
        for layer in getattr(self.backbone, "layers", ()):
            stride = getattr(layer, "stride", 1)
            needed *= max(stride) if isinstance(stride, tuple) else int(stride)
        return needed

    def check_fits(self, spec: str, role: str, size: int) -> None:
        """Fail early, naming the smallest working size, if the image `spec` at `size` (its longest side) is too
        small for the deepest layer a term reads."""
        needed = self.smallest_side()
        height, width = planned_shape(spec, None, role, max_pixels=None)
        if min(fit_longest_side((width, height), size)) >= needed:
            return
        smallest = math.ceil(needed * max(height, width) / min(height, width))
        while min(fit_longest_side((width, height), smallest)) < needed:  # rounding of the short side
            smallest += 1
        shape = "x".join(map(str, fit_longest_side((width, height), size)))
        or_crop = ", or a less elongated image" if width != height else ""
        raise StylefwError(
            f"at size={size} the {role} image becomes {shape} px, but the backbone's deepest layer needs at least "
            f"{needed} px on each side: use size={smallest} or more{or_crop}"
        )

    def train(self, mode: bool = True) -> "Objective":
        # The backbone is frozen; Lightning's train() must not flip it (and VGG has no dropout/BN anyway).
        super().train(mode)
        self.backbone.eval()
        return self


class LazyFeatures(Mapping[str, torch.Tensor]):
    """The activations a backbone pass yields, each computed on first read (see :meth:`Objective.forward`), in
    float32; with `low_precision` the layers run under autocast to that dtype (the terms' own code does not)."""

    def __init__(self, activations: Iterator[tuple[str, torch.Tensor]], layers: Sequence[str], device: str = "cpu",
                 low_precision: torch.dtype | None = None) -> None:
        self._activations = activations
        self._layers = tuple(layers)
        self._device, self._low_precision = device, low_precision
        self._computed: dict[str, torch.Tensor] = {}

    def __getitem__(self, layer: str) -> torch.Tensor:
        while layer not in self._computed:
            try:
                with torch.autocast(self._device, dtype=self._low_precision, enabled=self._low_precision is not None):
                    name, activation = next(self._activations)
            except StopIteration:
                raise KeyError(layer) from None
            self._computed[name] = activation.float()
        return self._computed[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)
