"""VGG16 / VGG19 (Simonyan & Zisserman 2015) with Caffe-style layer names: conv1_1, relu1_1, pool1, ..."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from .vgg_weights import load_vgg_weights
from stylefw.backbone import SequentialBackbone
from stylefw.errors import StylefwError

CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def vgg_layers(arch: str, pooling: str, width: float) -> "OrderedDict[str, nn.Module]":
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pooling]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = 3
    for block, (convs, channels) in enumerate(zip(CONVS_PER_BLOCK[arch], BLOCK_CHANNELS), start=1):
        channels = max(1, round(channels * width))
        for index in range(1, convs + 1):
            layers[f"conv{block}_{index}"] = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
            # In place: a convolution's backward needs its input, not its output, so the ReLU may overwrite that
            # output instead of allocating another activation (SequentialBackbone copies it when it is requested).
            layers[f"relu{block}_{index}"] = nn.ReLU(inplace=True)
            in_channels = channels
        layers[f"pool{block}"] = pool(kernel_size=2, stride=2)
    return layers


class VGG(SequentialBackbone):
    """A frozen VGG feature extractor.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        weights: ``caffe`` (vgg19 only, offline), ``torchvision``, ``random`` or a path to a
            state dict; each carries its own input preprocessing.
        pooling: ``max`` or ``avg`` (Gatys et al. found average pooling slightly smoother).
        width: channel multiplier; anything but 1 only makes sense with random weights (tests).
        seed: seed of the random init used by ``weights=random``.
        channels_last: keep weights and activations channels-last (faster on CPU; see
            :class:`~stylefw.backbone.SequentialBackbone`).
    """

    def __init__(
        self,
        arch: Literal["vgg16", "vgg19"] = "vgg19",
        weights: str = "caffe",
        pooling: Literal["max", "avg"] = "max",
        width: float = 1.0,
        seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        if arch not in CONVS_PER_BLOCK:
            raise StylefwError(f"backbone.arch={arch} is unknown: use vgg16 or vgg19")
        if pooling not in ("max", "avg"):
            raise StylefwError(f"backbone.pooling={pooling} is unknown: use max or avg")
        if width != 1.0 and weights != "random":
            raise StylefwError("backbone.width other than 1 needs backbone.weights=random (pretrained weights are full width)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers = vgg_layers(arch, pooling, width)
        conv_names = [name for name in layers if name.startswith("conv")]
        loaded = load_vgg_weights(arch, str(weights), conv_names)
        if loaded.convs is not None:
            for name, (weight, bias) in loaded.convs.items():
                conv = layers[name]
                if weight.shape != conv.weight.shape:
                    raise StylefwError(
                        f"weights for {name} have shape {tuple(weight.shape)}, {arch} needs {tuple(conv.weight.shape)}: "
                        "pass weights of the same VGG variant"
                    )
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
        super().__init__(layers, loaded.normalization, channels_last)
        self.arch, self.weights_source = arch, loaded.source

    def extra_repr(self) -> str:
        return f"arch={self.arch}, weights={self.weights_source}"
