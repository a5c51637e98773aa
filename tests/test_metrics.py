"""Quality metrics: the sliced Wasserstein against a naive reference, its invariances, and the
orderings both metrics must give on real images (style vs content vs noise) with the real Caffe VGG19."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylefw.errors import StylefwError
from stylefw.image.io import load_image
from stylefw.quality import (
    QualityMetrics,
    build_quality_metrics,
    content_distance,
    gaussian_blur,
    pearson_correlation,
    sliced_wasserstein,
    sobel_magnitude,
    style_distance,
    unit_projections,
)
from stylefw.plugins.backbones.vgg import VGG

# --------------------------------------------------------------------------- naive references


def naive_w2_squared(x: list[float], y: list[float]) -> float:
    """Exact W_2² between the uniform empirical measures on `x` and `y` (any sizes): integrate
    (F_x⁻¹(t) − F_y⁻¹(t))² over [0, 1] piece by piece between the steps of both quantile functions."""
    x, y = sorted(x), sorted(y)
    steps = sorted({i / len(x) for i in range(len(x) + 1)} | {j / len(y) for j in range(len(y) + 1)})
    total = 0.0
    for lower, upper in zip(steps, steps[1:]):
        middle = (lower + upper) / 2
        total += (upper - lower) * (x[int(middle * len(x))] - y[int(middle * len(y))]) ** 2
    return total


def naive_sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    squares = []
    for k in range(directions.shape[1]):
        project = lambda points: [sum(float(p[c]) * float(directions[c, k]) for c in range(len(p))) for p in points]
        squares.append(naive_w2_squared(project(a), project(b)))
    return math.sqrt(sum(squares) / len(squares))


def naive_sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    height, width = image.shape[-2:]
    pixel = lambda y, x: float(image[0, 0, min(max(y, 0), height - 1), min(max(x, 0), width - 1)])
    out = torch.zeros(1, 1, height, width, dtype=torch.float64)
    for y in range(height):
        for x in range(width):
            gx = sum(w * (pixel(y + dy, x + 1) - pixel(y + dy, x - 1)) for dy, w in ((-1, 1), (0, 2), (1, 1)))
            gy = sum(w * (pixel(y + 1, x + dx) - pixel(y - 1, x + dx)) for dx, w in ((-1, 1), (0, 2), (1, 1)))
            out[0, 0, y, x] = math.hypot(gx, gy)
    return out


# --------------------------------------------------------------------------- sliced Wasserstein


class TestSlicedWasserstein:
    def test_matches_naive_reference_for_sets_of_different_sizes(self) -> None:
        a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64) + 1
        directions = unit_projections(4, 6, 0, "test")
        # 15 quantiles: a multiple of both set sizes, where the quantile grid is exact.
        expected = naive_sliced_wasserstein(a, b, directions)
        assert float(sliced_wasserstein(a, b, directions, quantiles=15)) == pytest.approx(expected, rel=1e-12)
        assert float(sliced_wasserstein(a, b, directions, quantiles=997)) == pytest.approx(expected, rel=0.02)

    def test_symmetric_zero_on_itself_and_blind_to_point_order(self) -> None:
        a, b = torch.randn(20, 3, dtype=torch.float64), torch.randn(30, 3, dtype=torch.float64)
        directions = unit_projections(3, 8, 1, "test")
        forward = sliced_wasserstein(a, b, directions, 60)
        assert forward == sliced_wasserstein(b, a, directions, 60)
        assert forward == sliced_wasserstein(a[torch.randperm(20)], b[torch.randperm(30)], directions, 60)
        assert forward > 0 and sliced_wasserstein(a, a.flip(0), directions, 60) == 0

    def test_is_the_distance_of_a_shift_for_translated_sets(self) -> None:
        """Translating a set by v moves every projection by θ·v: SW_2 = √(mean_k (θ_k·v)²)."""
        a, shift = torch.randn(10, 3, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        directions = unit_projections(3, 16, 0, "test")
        expected = (shift @ directions).pow(2).mean().sqrt()
        torch.testing.assert_close(sliced_wasserstein(a + shift, a, directions, 10), expected)

    def test_projections_are_fixed_unit_vectors_per_layer(self) -> None:
        first = unit_projections(5, 7, 0, "relu1_1").clone()
        unit_projections.cache_clear()
        assert torch.equal(unit_projections(5, 7, 0, "relu1_1"), first)
        torch.testing.assert_close(first.norm(dim=0), torch.ones(7, dtype=torch.float64))
        assert not torch.equal(unit_projections(5, 7, 0, "relu2_1"), first)
        assert not torch.equal(unit_projections(5, 7, 1, "relu1_1"), first)


# --------------------------------------------------------------------------- content-distance pieces


class TestEdgeMaps:
    def test_sobel_matches_naive_reference(self) -> None:
        image = torch.rand(1, 1, 5, 6, dtype=torch.float64)
        torch.testing.assert_close(sobel_magnitude(image), naive_sobel_magnitude(image))

    def test_blur_keeps_a_flat_image_and_its_mean(self) -> None:
        flat = torch.full((1, 1, 9, 9), 0.3, dtype=torch.float64)
        torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)
        image = torch.rand(1, 1, 16, 16, dtype=torch.float64)
        blurred = gaussian_blur(image, 2.0)
        assert blurred.std() < 0.5 * image.std() and abs(float(blurred.mean() - image.mean())) < 0.02

    def test_pearson_matches_numpy(self) -> None:
        a, b = torch.rand(40), torch.rand(40)
        assert pearson_correlation(a, b) == pytest.approx(np.corrcoef(a.numpy(), b.numpy())[0, 1], rel=1e-6)
        assert pearson_correlation(a, torch.ones(40)) == 0.0

    def test_content_distance_ignores_brightness_and_contrast(self) -> None:
        image = gaussian_blur(torch.rand(1, 1, 32, 32), 2).repeat(1, 3, 1, 1)
        assert content_distance(0.5 * image + 0.2, image) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- real images, real VGG19

SIZE = 64  # small enough to keep the real VGG19 cheap; the orderings hold at 64-128 px


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    content = load_image("astronaut", SIZE)
    style = load_image("church_at_auvers", SIZE)
    generator = torch.Generator().manual_seed(0)
    return {
        "content": content,
        "style": style,
        "noise": torch.rand(content.shape, generator=generator),
        "style_flipped_crop": F.interpolate(style.flip(-1)[..., 5:, 8:], scale_factor=1.2, mode="bilinear"),
        "content_noised": (content + 0.05 * torch.randn(content.shape, generator=generator)).clamp(0, 1),
        "content_blurred": F.avg_pool2d(F.pad(content, (1, 1, 1, 1), mode="replicate"), 3, stride=1),
    }


@pytest.fixture(scope="module")
def caffe_metrics() -> QualityMetrics:
    return QualityMetrics(VGG(arch="vgg19", weights="caffe"), size=None)


class TestOrderingsOnRealImages:
    def test_style_distance_orders_style_crop_content_noise(self, caffe_metrics, images) -> None:
        style = images["style"]
        distance = {name: caffe_metrics.style_distance(images[name], style)
                    for name in ("style", "style_flipped_crop", "content", "noise")}
        assert distance["style"] == pytest.approx(0.0, abs=1e-9)
        assert distance["style_flipped_crop"] < 0.5 * distance["content"]
        assert distance["style_flipped_crop"] < 0.5 * distance["noise"]
        assert distance["content"] > 0.3 and distance["noise"] > 0.3

    def test_style_distance_function_agrees_with_the_class(self, caffe_metrics, images) -> None:
        direct = style_distance(images["content"], images["style"], caffe_metrics.backbone)
        assert direct == caffe_metrics.style_distance(images["content"], images["style"])

    def test_content_distance_orders_copies_style_noise(self, images) -> None:
        content = images["content"]
        distance = {name: content_distance(images[name], content)
                    for name in ("content", "content_noised", "content_blurred", "style", "noise")}
        assert distance["content"] == pytest.approx(0.0, abs=1e-9)
        assert 0 < distance["content_noised"] < 0.1 and 0 < distance["content_blurred"] < 0.1
        assert distance["style"] > 0.5 and distance["noise"] > 0.5


# --------------------------------------------------------------------------- the per-run scorer


def tiny_backbone() -> VGG:
    return VGG(weights="random", width=0.125)


class CountingBackbone(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner, self.calls = tiny_backbone(), 0

    def forward(self, image: torch.Tensor, layers):
        self.calls += 1
        return self.inner(image, layers)


class TestQualityMetrics:
    def test_returns_both_distances_and_is_deterministic(self) -> None:
        metrics = QualityMetrics(tiny_backbone(), size=32)
        output, content, style = torch.rand(1, 3, 40, 30), torch.rand(1, 3, 40, 30), torch.rand(1, 3, 24, 36)
        first = metrics(output, content, style)
        assert set(first) == {"style_distance", "content_distance"}
        assert all(isinstance(value, float) and value > 0 for value in first.values())
        assert QualityMetrics(tiny_backbone(), size=32)(output, content, style) == first

    def test_style_statistics_are_computed_once_per_style(self) -> None:
        backbone = CountingBackbone()
        metrics = QualityMetrics(backbone, size=32)
        style = torch.rand(1, 3, 32, 32)
        for _ in range(3):
            metrics.style_distance(torch.rand(1, 3, 32, 32), style)
        assert backbone.calls == 3 + 1
        metrics.style_distance(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
        assert backbone.calls == 4 + 2

    def test_working_size_makes_image_size_irrelevant(self) -> None:
        content = load_image("astronaut", 96)
        metrics = QualityMetrics(tiny_backbone(), size=48)
        assert metrics.content_distance(load_image("astronaut", 64), content) < 0.02

    def test_bad_inputs_and_settings_are_one_line_errors(self) -> None:
        metrics = QualityMetrics(tiny_backbone(), size=32)
        with pytest.raises(StylefwError, match="1×3×H×W"):
            metrics(torch.rand(3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
        with pytest.raises(StylefwError, match="metrics.projections"):
            QualityMetrics(tiny_backbone(), projections=0)
        with pytest.raises(StylefwError, match="unknown backbone layer"):
            QualityMetrics(tiny_backbone(), style_layers=["relu9_1"])


class TestConfig:
    def test_none_builds_nothing(self, compose_cfg) -> None:
        assert build_quality_metrics(compose_cfg("metrics=none", tiny=False).get("metrics")) is None

    def test_default_holds_the_caffe_vgg19_and_builds(self, compose_cfg) -> None:
        cfg = compose_cfg(tiny=False)
        assert cfg.metrics.backbone.arch == "vgg19" and cfg.metrics.backbone.weights == "caffe"
        metrics = build_quality_metrics(compose_cfg().metrics)  # TINY: a small random backbone at 32 px
        assert isinstance(metrics, QualityMetrics) and metrics.size == 32

    def test_bad_setting_is_a_one_line_error(self, compose_cfg) -> None:
        cfg = compose_cfg("metrics.quantiles=-1")
        with pytest.raises(StylefwError, match="metrics.quantiles=-1"):
            build_quality_metrics(cfg.metrics)
