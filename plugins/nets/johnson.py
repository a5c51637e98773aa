"""Johnson, Alahi & Fei-Fei 2016 ("Perceptual Losses for Real-Time Style Transfer") transform net.

The layer plan of the paper, with the changes every later implementation made (pytorch/examples
``fast_neural_style``): instance norm instead of batch norm (Ulyanov et al. 2016), reflection
padding on every convolution, padded residual blocks, and nearest-neighbour upsampling followed
by a convolution instead of transposed convolutions (no checkerboard artefacts; Odena et al.
2016). Its width and depth are configurable, and residual blocks may be depthwise separable,
which is what makes a CPU-sized net (``net=slim``).

Images are RGB in [0, 1] in and out; the output is not squashed (like pytorch/examples) and is
clipped to [0, 1] only when saved.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from stylefw.errors import check_number, check_whole_number

Statistics = list[tuple[torch.Tensor, torch.Tensor]]  # per instance-norm layer: (mean, variance), each B×C×1×1
BASE_CHANNELS = (32, 64, 128)  # Johnson et al.: 9×9 conv, two stride-2 downsamplings, residual blocks


class InstanceNorm(nn.Module):
    """Instance normalisation ``y = γ·(x − μ)/√(σ² + ε) + β`` with μ, σ² per image and channel over H·W
    (Ulyanov, Vedaldi & Lempitsky 2016), whose statistics can be captured on one image and reused on another.

    Reusing them is what makes tiling seamless: each tile is normalised with the statistics of the
    whole image (or of a downscaled copy) instead of its own, which differ and shift the tone.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.shared: tuple[torch.Tensor, torch.Tensor] | None = None  # used instead of the input's own statistics
        self.captured: tuple[torch.Tensor, torch.Tensor] | None = None
        self.capturing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared is not None:
            mean, variance = self.shared
            scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(variance + self.eps)
            return (x - mean) * scale + self.bias.view(1, -1, 1, 1)
        if self.capturing:
            variance, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
            self.captured = (mean, variance)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class ConvLayer(nn.Sequential):
    """Reflection padding and a convolution (optionally depthwise separable: per-channel k×k, then 1×1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 depthwise: bool = False) -> None:
        pad = nn.ReflectionPad2d(kernel_size // 2)
        if depthwise:
            super().__init__(pad, nn.Conv2d(in_channels, in_channels, kernel_size, stride, groups=in_channels),
                             nn.Conv2d(in_channels, out_channels, 1))
        else:
            super().__init__(pad, nn.Conv2d(in_channels, out_channels, kernel_size, stride))


def conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(ConvLayer(in_channels, out_channels, kernel_size, stride), InstanceNorm(out_channels),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3×3 convolutions (He et al. 2016; Johnson et al.'s padded variant)."""

    def __init__(self, channels: int, depthwise: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, depthwise=depthwise), InstanceNorm(channels), nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3, depthwise=depthwise), InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling to a given size, then a 3×3 convolution, instance norm and ReLU.

    Upsampling to the size of the matching encoder activation (not blindly ×2) lets any image
    size through: a 33-px side goes 33 → 17 → 9 → 17 → 33.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv_norm_relu(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class TransformNet(nn.Module):
    """The image transformation network: 9×9 conv, two stride-2 convs, residual blocks, two
    upsample+conv stages, 9×9 conv to RGB.

    Args:
        width: channel multiplier on Johnson et al.'s 32-64-128 channels (1.0: the paper's net).
        residual_blocks: number of residual blocks at the lowest resolution (paper: 5).
        depthwise: depthwise-separable residual blocks (a 3×3 per-channel conv then a 1×1 conv):
            about 8× fewer multiply-adds in the blocks, the bulk of the net's cost.
        residual_output: output ``photo + net(photo)`` with the last convolution starting at zero, so the
            untrained net returns the photo itself and training only has to learn the stylization. Not in
            the paper; it matters on short (CPU) trainings (docs/methods.md, method=fast, "Training").

    Any image size goes through; :attr:`stride` is the net's total downsampling, so tiles that
    start at multiples of it see the same sampling grid as the whole image.
    """

    stride = 4

    def __init__(self, width: float = 1.0, residual_blocks: int = 5, depthwise: bool = False,
                 residual_output: bool = False) -> None:
        super().__init__()
        check_number("net.width", width, above=0, at_most=8, hint="1.0: Johnson et al.'s 32-64-128 channels")
        check_whole_number("net.residual_blocks", residual_blocks, 0, hint="paper: 5")
        c1, c2, c3 = (max(1, round(channels * width)) for channels in BASE_CHANNELS)
        self.width, self.residual_blocks, self.depthwise = float(width), residual_blocks, bool(depthwise)
        self.encoder = nn.ModuleList([conv_norm_relu(3, c1, 9), conv_norm_relu(c1, c2, 3, 2),
                                      conv_norm_relu(c2, c3, 3, 2)])
        self.residuals = nn.Sequential(*(ResidualBlock(c3, depthwise) for _ in range(residual_blocks)))
        self.decoder = nn.ModuleList([UpsampleConv(c3, c2), UpsampleConv(c2, c1)])
        self.output = ConvLayer(c1, 3, 9)
        self.residual_output = bool(residual_output)
        if self.residual_output:  # start as the identity: the photo itself, which training then stylizes
            nn.init.zeros_(self.output[-1].weight)
            nn.init.zeros_(self.output[-1].bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        sizes = []
        for layer in self.encoder:
            sizes.append(x.shape[-2:])
            x = layer(x)
        x = self.residuals(x)
        for layer, size in zip(self.decoder, reversed(sizes[1:])):
            x = layer(x, size)
        x = self.output(x)
        return image + x if self.residual_output else x

    def norms(self) -> list[InstanceNorm]:
        return [module for module in self.modules() if isinstance(module, InstanceNorm)]

    @torch.no_grad()
    def capture_statistics(self, image: torch.Tensor) -> Statistics:
        """Every instance-norm layer's (mean, variance) on `image`, for :meth:`shared_statistics`."""
        norms = self.norms()
        for norm in norms:
            norm.capturing = True
        try:
            self(image)
        finally:
            for norm in norms:
                norm.capturing = False
        statistics = [norm.captured for norm in norms]
        for norm in norms:
            norm.captured = None
        return statistics

    @contextmanager
    def shared_statistics(self, statistics: Statistics) -> Iterator[None]:
        """Within the block, every instance norm uses the given statistics instead of its input's own."""
        norms = self.norms()
        if len(statistics) != len(norms):
            raise ValueError(f"{len(statistics)} statistics for {len(norms)} instance-norm layers")
        for norm, shared in zip(norms, statistics):
            norm.shared = shared
        try:
            yield
        finally:
            for norm in norms:
                norm.shared = None

    def extra_repr(self) -> str:
        return f"width={self.width:g}, residual_blocks={self.residual_blocks}, depthwise={self.depthwise}"
