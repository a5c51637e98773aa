"""Backbone base: a frozen feature extractor with named layers, trimmed to the layers a run needs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from stylefw.errors import StylefwError


class PixelNormalization(nn.Module):
    """Maps RGB images in [0, 1] to the input space a set of weights was trained on.

    ``x' = (scale * x[channel_order] - mean) / std``: Caffe weights use BGR order, 0-255 and
    mean subtraction; torchvision weights use RGB, 0-1 and ImageNet mean/std.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float, bgr: bool) -> None:
        super().__init__()
        self.scale = scale
        self.bgr = bgr
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            image = image.flip(1)
        return (image * self.scale - self.mean) / self.std

    def extra_repr(self) -> str:
        order = "BGR" if self.bgr else "RGB"
        return f"{order}, scale={self.scale}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class SequentialBackbone(nn.Module):
    """A chain of named layers (``conv1_1``, ``relu1_1``, ``pool1``, ...) with frozen weights.

    ``forward(image, layers)`` takes RGB images in [0, 1], applies the weights' own
    normalization and returns ``{layer: activation}`` for the requested layers, stopping
    at the deepest one. :meth:`truncate` drops every layer after the deepest a run uses.

    With ``channels_last`` the weights and activations are stored channels-last (NHWC strides,
    still indexed N×C×H×W): oneDNN's convolutions then skip their layout reorders and max
    pooling vectorizes over channels, which makes a pass faster on CPUs (docs/performance.md).
    Activations keep the same values.
    """

    def __init__(self, layers: "OrderedDict[str, nn.Module]", normalization: nn.Module,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.normalization = normalization
        self.layers = nn.Sequential(layers)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.layers.to(memory_format=self.memory_format)
        self.freeze()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.layers.named_children())

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def check_layers(self, layers: Iterable[str]) -> None:
        unknown = [layer for layer in layers if layer not in self.layer_names]
        if unknown:
            raise StylefwError(
                f"unknown backbone layer(s) {', '.join(unknown)}: "
                f"{type(self).__name__} has {', '.join(self.layer_names)}"
            )

    def truncate(self, layers: Iterable[str]) -> None:
        """Drop the layers after the deepest of `layers`, so no pass computes unused activations."""
        layers = list(layers)
        self.check_layers(layers)
        if not layers:
            return
        deepest = max(self.layer_names.index(layer) for layer in layers)
        self.layers = self.layers[: deepest + 1]

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(self.activations(image, layers))

    def activations(self, image: torch.Tensor, layers: Sequence[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """``(layer, activation)`` for `layers` in network order, each computed when the caller asks for it, and
        no layer after the deepest requested."""
        wanted = set(layers)
        missing = wanted - set(self.layer_names)
        if missing:
            raise StylefwError(f"backbone layer(s) {', '.join(sorted(missing))} were truncated away or do not exist")
        # The layout changes before the normalization, so its ops and their backward run in one layout.
        x = self.normalization(image.contiguous(memory_format=self.memory_format))
        children = list(self.layers.named_children())
        for index, (name, layer) in enumerate(children):
            if not wanted:
                return
            x = layer(x)
            if name in wanted:
                wanted.discard(name)
                following = children[index + 1][1] if index + 1 < len(children) else None
                # An in-place layer next (VGG's ReLUs) would overwrite what the caller keeps.
                yield name, x.clone() if getattr(following, "inplace", False) else x
