"""Loss-independent quality metrics: how close a result is to the style, and whether its subject survived.

Every run can be scored with the same two numbers whatever loss terms produced it, so runs
with different losses, methods or tools are comparable and a sweep can optimise them. Both
are distances: **lower is better**, 0 means identical.

- :func:`style_distance`: sliced Wasserstein distance between the output's and the style's
  distributions of VGG feature vectors, normalised per layer and averaged over layers.
- :func:`content_distance`: ``1 − Pearson correlation`` of the edge maps of the blurred
  grayscale output and content. It needs no network.

:class:`QualityMetrics` computes both at a fixed working resolution (so runs of different
sizes are comparable) and caches the style's statistics; the run builds it from the
``metrics`` config group. The feature network is always an argument: this core module
imports no built-in plugin. docs/sweeps.md ("Quality scores") has what the numbers mean on
real images and how their settings were chosen.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylefw.errors import StylefwError, build, check_number, check_whole_number
from stylefw.image.color import luminance
from stylefw.image.filters import gaussian_blur, resize, resize_longest

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_SIZE = 256
DEFAULT_PROJECTIONS = 64
DEFAULT_QUANTILES = 256
DEFAULT_BLUR = 0.01
_MIN_SCALE = 1e-8
_STYLE_CACHE_SIZE = 8


# --------------------------------------------------------------------------- sliced Wasserstein


@lru_cache(maxsize=64)
def unit_projections(channels: int, count: int, seed: int, layer: str) -> torch.Tensor:
    """`count` random unit vectors in R^channels as a channels × count float64 tensor (shared: do not modify).

    Fixed by (seed, layer name, channels) alone, so every call, run and process projects
    onto the same directions and the distances are comparable.
    """
    # crc32, not hash(): str hashes change per process. Seed and layer are hashed together
    # because torch's CPU generator keeps only 32 bits of its seed.
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{layer}".encode()))
    directions = torch.randn(channels, count, generator=generator, dtype=torch.float64)
    return directions / directions.norm(dim=0, keepdim=True)


def quantile_functions(values: torch.Tensor, quantiles: int) -> torch.Tensor:
    """Empirical quantile functions of the rows of `values` (K × N) at the midpoints
    ``t_i = (i + ½) / Q``, i = 0 … Q−1: ``q(t) = x_(⌊t·N⌋)``, the ⌊t·N⌋-th smallest value.

    This is the exact (step) quantile function of the N samples read at Q points, so sets
    of different sizes are compared on a common grid; when Q is a multiple of N it repeats
    each sorted value Q/N times and loses nothing.
    """
    count = values.shape[-1]
    levels = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    index = (levels * count).floor().long().clamp_(max=count - 1).to(values.device)
    return sort_rows(values).index_select(-1, index)


def sort_rows(values: torch.Tensor) -> torch.Tensor:
    """`values` sorted along the last dimension; on the CPU through NumPy, whose vectorised sort is faster."""
    if values.device.type != "cpu":
        return values.sort(dim=-1).values
    return torch.from_numpy(np.sort(values.numpy(), axis=-1))


def project(points: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """The N × C point set `points` projected on the C × K unit `projections`, as K × N."""
    return (points @ projections.to(points)).T


def wasserstein_from_quantiles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``√(1/K Σ_k 1/Q Σ_i (a_ki − b_ki)²)``: the sliced W_2 distance from K × Q quantile functions."""
    return (a - b).pow(2).mean().sqrt()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: torch.Tensor, quantiles: int) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between two point sets, N_a × C and N_b × C.

    ``SW_2(a, b) = √( 1/K Σ_k W_2²(θ_k·a, θ_k·b) )`` over the K unit directions θ_k
    (columns of `projections`), where the 1-D distance between the projected sets is read
    off their quantile functions: ``W_2² = ∫₀¹ (F_a⁻¹(t) − F_b⁻¹(t))² dt``, evaluated by the
    midpoint rule on `quantiles` points (:func:`quantile_functions`).

    Rabin, Peyré, Delon & Bernot 2011 (SSVM) define the sliced distance; Heitz, Vanhoey, Chambon
    & Belcour 2021 (CVPR) use its square on VGG-19 features with random directions. Here the
    directions are *fixed* (a metric must not be random), the root gives a distance in feature
    units, and quantile resampling lets sets of different sizes compare. Symmetric, invariant to
    the order of the points, 0 for identical sets.
    """
    return wasserstein_from_quantiles(
        quantile_functions(project(a, projections), quantiles), quantile_functions(project(b, projections), quantiles)
    )


def feature_points(features: torch.Tensor) -> torch.Tensor:
    """The 1 × C × H × W activations of one image as H·W points in R^C (float64)."""
    if features.dim() != 4 or features.shape[0] != 1:
        raise StylefwError(f"features of shape {tuple(features.shape)} are not 1×C×H×W: score one image at a time")
    return features[0].flatten(1).T.double()


# --------------------------------------------------------------------------- style distance


@dataclass(frozen=True)
class StyleStatistics:
    """What :func:`style_distance` needs of the style image, per layer: its projected
    quantile functions (K × Q) and its scale (the sliced distance from the style's feature
    distribution to the single point at its mean)."""

    quantiles: dict[str, torch.Tensor]
    scales: dict[str, float]


@dataclass(frozen=True)
class SlicingSettings:
    layers: tuple[str, ...] = STYLE_LAYERS
    projections: int = DEFAULT_PROJECTIONS
    quantiles: int = DEFAULT_QUANTILES
    seed: int = 0

    def directions(self, layer: str, channels: int) -> torch.Tensor:
        return unit_projections(channels, self.projections, self.seed, layer)


def style_statistics(features: Mapping[str, torch.Tensor], settings: SlicingSettings) -> StyleStatistics:
    quantiles, scales = {}, {}
    for layer in settings.layers:
        points = feature_points(features[layer])
        values = project(points, settings.directions(layer, points.shape[1]))
        quantiles[layer] = quantile_functions(values, settings.quantiles)
        # SW_2 to the point mass at the mean: the root mean projected variance.
        scales[layer] = float((values - values.mean(1, keepdim=True)).pow(2).mean().sqrt())
    return StyleStatistics(quantiles, scales)


def normalised_style_distance(
    features: Mapping[str, torch.Tensor], style: StyleStatistics, settings: SlicingSettings
) -> float:
    """``1/L Σ_l SW_2(F_l(output), F_l(style)) / s_l``, see :func:`style_distance`."""
    total = 0.0
    for layer in settings.layers:
        points = feature_points(features[layer])
        values = project(points, settings.directions(layer, points.shape[1]))
        distance = wasserstein_from_quantiles(quantile_functions(values, settings.quantiles), style.quantiles[layer])
        total += float(distance) / max(style.scales[layer], _MIN_SCALE)
    return total / len(settings.layers)


def style_distance(
    output: torch.Tensor,
    style: torch.Tensor,
    backbone: nn.Module,
    layers: Sequence[str] = STYLE_LAYERS,
    projections: int = DEFAULT_PROJECTIONS,
    quantiles: int = DEFAULT_QUANTILES,
    seed: int = 0,
) -> float:
    """How far the output's feature statistics are from the style's (lower is better, 0 = same).

    ``D_style = 1/L Σ_l SW_2(F_l(output), F_l(style)) / s_l``, where F_l is the set of
    per-position feature vectors of layer l (one point in R^C per position),
    :func:`sliced_wasserstein` compares the two sets along a fixed seeded set of
    `projections` unit directions per layer, and ``s_l = SW_2(F_l(style), δ_mean)``, the
    root mean projected variance of the style's features. The division makes layers of very
    different magnitudes count equally and gives the number a meaning: a layer scores 1
    when the output is as far from the style as a set of features all equal to the style's
    mean vector. W_2 as in Heitz et al. 2021: its normaliser (a standard deviation) is the
    natural scale. The directions are fixed, so the same inputs always give the same value.

    Images are 1×3×H×W RGB in [0, 1], of any sizes (the sets are compared through
    quantile functions, so the output and the style may differ in size), but the value
    depends on the scale of the texture in pixels: compare images at one working size, as
    :class:`QualityMetrics` does. `backbone(image, layers)` returns the features and applies
    its own input normalisation. Not symmetric: the normaliser is the style's.
    """
    check_image(output)
    check_image(style)
    settings = SlicingSettings(tuple(layers), projections, quantiles, seed)
    with torch.no_grad():
        style_stats = style_statistics(backbone(style, settings.layers), settings)
        return normalised_style_distance(backbone(output, settings.layers), style_stats, settings)


# --------------------------------------------------------------------------- content distance


def sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude ``√(G_x² + G_y²)`` of a B×1×H×W image with 3×3 Sobel kernels."""
    smooth = image.new_tensor([1.0, 2.0, 1.0])
    derivative = image.new_tensor([-1.0, 0.0, 1.0])
    kernels = torch.stack([torch.outer(smooth, derivative), torch.outer(derivative, smooth)]).unsqueeze(1)
    gradients = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), kernels)
    return gradients.pow(2).sum(1, keepdim=True).sqrt()


def edge_map(image: torch.Tensor, blur: float) -> torch.Tensor:
    """Sobel magnitude of the grayscale image blurred with σ = `blur` × its longer side."""
    return sobel_magnitude(gaussian_blur(luminance(image), blur * max(image.shape[-2:])))


def pearson_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the values of two same-shape tensors; 0 if either is constant."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float((a.pow(2).sum() * b.pow(2).sum()).sqrt())
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


def content_distance(output: torch.Tensor, content: torch.Tensor, blur: float = DEFAULT_BLUR) -> float:
    """Whether the content's subject is still recognisable in the output (lower is better, 0 = same structure).

    ``D_content = 1 − corr(E(output), E(content))``, Pearson correlation over pixels, where
    ``E(x) = |∇ (G_σ * gray(x))|`` is the Sobel gradient magnitude of the grayscale image
    blurred with a Gaussian of σ = `blur` × the longer side (default 1 %: 2.6 px at 256).
    The content is resized to the output's size first. Range [0, 2]; an unrelated image
    scores about 1. Edges and not VGG features, because the relu4_2 feature error (the usual
    content loss) does not track whether a subject is recognisable; the blur removes brush-stroke
    and noise texture, so what is compared is the layout of the subject's contours, and the
    correlation ignores the overall contrast and brightness a style changes.
    """
    content = resize(content, tuple(check_image(output).shape[-2:])).to(output)
    with torch.no_grad():
        return 1.0 - pearson_correlation(edge_map(output.clamp(0, 1), blur), edge_map(content.clamp(0, 1), blur))


def check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise StylefwError(f"quality metrics need one 1×3×H×W RGB image, got {shape}: score images one at a time")
    return image


class QualityMetrics:
    """Scores a finished run: ``metrics(output, content, style) -> {"style_distance", "content_distance"}``.

    Every image is first resized so its longer side is `size` pixels (the same for every
    run, whatever its own size; None keeps the sizes given) and clipped to [0, 1], as the
    saved PNG is. The style's statistics are cached by the style image's pixels, so a sweep
    that reuses this object computes them once per style. See :func:`style_distance` and
    :func:`content_distance` for the formulas.

    Args:
        backbone: feature network, ``backbone(image, layers) -> {layer: features}``; it
            sets the device the metrics run on. Use the same one for every run you compare.
        size: working resolution (longest side, pixels).
        style_layers, projections, quantiles, seed: of :func:`style_distance`.
        blur: of :func:`content_distance` (Gaussian σ as a fraction of the longer side).
    """

    def __init__(
        self,
        backbone: nn.Module,
        size: int | None = DEFAULT_SIZE,
        style_layers: Sequence[str] = STYLE_LAYERS,
        projections: int = DEFAULT_PROJECTIONS,
        quantiles: int = DEFAULT_QUANTILES,
        blur: float = DEFAULT_BLUR,
        seed: int = 0,
    ) -> None:
        check_settings(size, style_layers, projections, quantiles, blur)
        if hasattr(backbone, "check_layers"):
            backbone.check_layers(style_layers)
        self.backbone = backbone
        self.size = size
        self.blur = float(blur)
        self.settings = SlicingSettings(tuple(style_layers), int(projections), int(quantiles), int(seed))
        self._style_cache: dict[str, StyleStatistics] = {}

    def __call__(self, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict[str, float]:
        return self.score(output, content, [style], [1.0])

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        parameter = next(self.backbone.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        return resize_longest(check_image(image).detach().float().to(device), self.size).clamp(0, 1)

    def score(self, image: torch.Tensor, content: torch.Tensor, styles: Sequence[torch.Tensor],
              weights: Sequence[float]) -> dict[str, float]:
        """The scores of a result against the user's content and style images.

        With several styles ``style_distance`` is the blend-weighted mean of the distances to each
        style, so runs with one and several styles stay comparable in a sweep.
        """
        return {
            "style_distance": sum(weight * self.style_distance(image, style) for weight, style in zip(weights, styles)),
            "content_distance": self.content_distance(image, content),
        }

    def style_distance(self, output: torch.Tensor, style: torch.Tensor) -> float:
        output, style = self.prepare(output), self.prepare(style)
        with torch.no_grad():
            statistics = self.style_statistics(style)
            return normalised_style_distance(self.backbone(output, self.settings.layers), statistics, self.settings)

    def content_distance(self, output: torch.Tensor, content: torch.Tensor) -> float:
        return content_distance(self.prepare(output), self.prepare(content), self.blur)

    def style_statistics(self, style: torch.Tensor) -> StyleStatistics:
        """The style's statistics at the working size (`style` already prepared), from the cache when seen."""
        key = hashlib.blake2b(style.cpu().numpy().tobytes(), digest_size=16).hexdigest() + str(tuple(style.shape))
        if key not in self._style_cache:
            if len(self._style_cache) >= _STYLE_CACHE_SIZE:
                self._style_cache.pop(next(iter(self._style_cache)))
            self._style_cache[key] = style_statistics(self.backbone(style, self.settings.layers), self.settings)
        return self._style_cache[key]

    def __repr__(self) -> str:
        s = self.settings
        return (f"QualityMetrics(size={self.size}, style_layers={list(s.layers)}, projections={s.projections}, "
                f"quantiles={s.quantiles}, blur={self.blur}, seed={s.seed})")


def check_settings(size: int | None, layers: Sequence[str], projections: int, quantiles: int, blur: float) -> None:
    check_whole_number("metrics.size", size, 16, optional=True, hint="pixels; null keeps image sizes")
    if not layers:
        raise StylefwError("metrics.style_layers is empty: name at least one backbone layer, e.g. [relu3_1]")
    check_whole_number("metrics.projections", projections, hint="default 64")
    check_whole_number("metrics.quantiles", quantiles, hint="default 256")
    check_number("metrics.blur", blur, least=0, below=0.5, hint="a fraction of the image side; default 0.01")


def build_quality_metrics(node: Any) -> QualityMetrics | None:
    """The :class:`QualityMetrics` the ``metrics`` config node describes; None for ``metrics=none`` (no node)."""
    if node is None or not isinstance(node, Mapping) or "_target_" not in node:
        return None
    metrics = build(node, "metrics")
    if not isinstance(metrics, QualityMetrics):
        raise StylefwError(f"metrics built a {type(metrics).__name__}, not a stylefw.quality.QualityMetrics")
    return metrics
