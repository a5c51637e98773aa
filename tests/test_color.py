"""Colour control (stylefw/image/color.py): YIQ, luminance-only transfer, linear colour histogram matching."""

from __future__ import annotations

import torch

from stylefw.image.color import (
    blended_color_statistics,
    color_statistics,
    luminance,
    luminance_image,
    match_color_statistics,
    match_luminance,
    recombine_with_chroma,
    rgb_to_yiq,
    yiq_to_rgb,
)
from stylefw.plugins.methods.pixel import initial_image


def moderate_image(seed: int, size: int = 12, centre: tuple[float, float, float] = (0.5, 0.5, 0.5),
                   spread: float = 0.15) -> torch.Tensor:
    """Random colours around `centre`, far enough from 0 and 1 that clipping does not interfere."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 3, size, size, generator=generator, dtype=torch.float64)
    return (torch.tensor(centre, dtype=torch.float64).view(1, 3, 1, 1) + spread * noise.clamp(-2.5, 2.5)).clamp(0, 1)


def test_yiq_round_trip_and_luma_formula() -> None:
    image = moderate_image(0)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-12)
    r, g, b = image[0]
    assert torch.allclose(luminance(image)[0, 0], 0.299 * r + 0.587 * g + 0.114 * b, atol=1e-12)
    grey = torch.full((1, 3, 2, 2), 0.3, dtype=torch.float64)
    assert torch.allclose(rgb_to_yiq(grey)[:, 1:], torch.zeros(1, 2, 2, 2, dtype=torch.float64), atol=1e-6)


def test_luminance_image_is_grey_with_the_luma() -> None:
    image = moderate_image(1)
    grey = luminance_image(image)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert torch.allclose(grey[:, :1], luminance(image), atol=1e-12)


def test_recombination_keeps_the_content_chroma_and_the_stylized_luma() -> None:
    content = moderate_image(2, centre=(0.6, 0.45, 0.4), spread=0.05)
    stylized = moderate_image(3, centre=(0.3, 0.5, 0.7), spread=0.05)  # very different colours, all in gamut
    combined = recombine_with_chroma(stylized, content)
    assert (rgb_to_yiq(combined)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().max() < 1e-9
    assert (luminance(combined) - luminance(stylized)).abs().max() < 1e-9
    before = (rgb_to_yiq(stylized)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean()
    assert before > 0.05  # the stylized image's own chroma was far from the content's


def test_recombination_resizes_the_content() -> None:
    combined = recombine_with_chroma(moderate_image(4, size=8), moderate_image(5, size=16))
    assert combined.shape == (1, 3, 8, 8) and 0 <= combined.min() and combined.max() <= 1


def test_style_luminance_takes_the_content_luminance_mean_and_deviation() -> None:
    style = moderate_image(6, centre=(0.2, 0.25, 0.3), spread=0.05)  # dark, low contrast
    content = moderate_image(7, centre=(0.6, 0.6, 0.55), spread=0.12)
    matched = match_luminance(style, content)
    assert torch.equal(matched[:, 0], matched[:, 2])  # grey
    y, y_content = matched[:, 0], luminance(content)
    assert abs(float(y.mean() - y_content.mean())) < 1e-6
    assert abs(float(y.std(unbiased=False) - y_content.std(unbiased=False))) < 1e-6
    # the pattern is the style's: a positive affine map of its luma
    assert torch.corrcoef(torch.stack([y.flatten(), luminance(style).flatten()]))[0, 1] > 0.999


def test_histogram_matching_gives_the_reference_mean_and_covariance() -> None:
    image = moderate_image(8, centre=(0.3, 0.6, 0.4), spread=0.08)
    reference = moderate_image(9, centre=(0.55, 0.45, 0.5), spread=0.1)
    mixing = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.4], [0.0, 0.1, 1.0]], dtype=torch.float64)
    reference = (0.5 + torch.einsum("ij,bjhw->bihw", mixing, reference - 0.5) * 0.8).clamp(0, 1)  # correlated
    reference_mean, reference_covariance = color_statistics(reference, eps=0)
    exact = match_color_statistics(image, reference, eps=0)
    mean, covariance = color_statistics(exact, eps=0)
    assert torch.allclose(mean, reference_mean, atol=1e-9)
    assert torch.allclose(covariance, reference_covariance, atol=1e-9)
    # the default eps (kept for grey images) moves the covariance by about eps, not more
    mean, covariance = color_statistics(match_color_statistics(image, reference), eps=0)
    assert torch.allclose(mean, reference_mean, atol=1e-9)
    assert torch.allclose(covariance, reference_covariance, atol=2e-5)
    image_mean, _ = color_statistics(image, eps=0)
    assert (image_mean - reference_mean).abs().max() > 0.1  # there was something to match


def test_histogram_matching_of_a_grey_image_is_finite() -> None:
    """A grey image's colour covariance is singular; eps·I keeps the transform finite."""
    grey = luminance_image(moderate_image(10))
    matched = match_color_statistics(grey, moderate_image(11, centre=(0.7, 0.3, 0.3)))
    assert torch.isfinite(matched).all() and 0 <= matched.min() and matched.max() <= 1
    flat = match_color_statistics(torch.full((1, 3, 4, 4), 0.5), moderate_image(12, size=4).float())
    assert torch.isfinite(flat).all()


def test_histogram_matching_keeps_dtype_and_range() -> None:
    image = torch.rand(1, 3, 6, 5)
    matched = match_color_statistics(image, torch.rand(1, 3, 7, 9))
    assert matched.dtype == torch.float32 and matched.shape == image.shape
    assert 0 <= matched.min() and matched.max() <= 1


def test_blended_statistics_are_those_of_the_pooled_pixels() -> None:
    """Naive reference: with weights proportional to pixel counts the blend is the concatenated pixels."""
    small = moderate_image(13, size=6, centre=(0.2, 0.5, 0.7))
    large = moderate_image(14, size=12, centre=(0.7, 0.4, 0.3))
    pooled = torch.cat([small.flatten(2), large.flatten(2)], dim=2).unsqueeze(-1)  # 1×3×(36+144)×1
    mean, covariance = blended_color_statistics([small, large], [0.2, 0.8], eps=0)
    pooled_mean, pooled_covariance = color_statistics(pooled, eps=0)
    assert torch.allclose(mean, pooled_mean, atol=1e-12)
    assert torch.allclose(covariance, pooled_covariance, atol=1e-12)
    only_small = blended_color_statistics([small, large], [1.0, 0.0], eps=0)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(only_small, color_statistics(small, eps=0)))


def test_content_in_style_colors_init_has_the_styles_colours_and_the_contents_layout() -> None:
    content = moderate_image(15, size=16, centre=(0.45, 0.5, 0.4), spread=0.1)
    styles = [moderate_image(16, centre=(0.55, 0.45, 0.4), spread=0.06),
              moderate_image(17, centre=(0.45, 0.45, 0.55), spread=0.06)]
    start = initial_image("content_in_style_colors", content, styles, [0.5, 0.5])
    mean, covariance = color_statistics(start, eps=0)
    blend_mean, blend_covariance = blended_color_statistics(styles, [0.5, 0.5], eps=0)
    assert torch.allclose(mean, blend_mean, atol=1e-6) and torch.allclose(covariance, blend_covariance, atol=5e-5)
    # every pixel went through the same affine colour map: the layout (edges, shapes) is the content's
    pixels = torch.cat([content.flatten(2)[0].T, torch.ones(16 * 16, 1, dtype=content.dtype)], dim=1)
    fitted = torch.linalg.lstsq(pixels, start.flatten(2)[0].T).solution
    assert torch.allclose(pixels @ fitted, start.flatten(2)[0].T, atol=1e-9)
    assert (mean - color_statistics(content, eps=0)[0]).abs().max() > 0.05  # the colours did move
