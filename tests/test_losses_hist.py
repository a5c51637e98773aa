"""Histogram loss (Risser et al. 2017) against naive loop references, and its behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from stylefw.plugins.losses.hist import (
    HistogramLoss,
    histogram_loss,
    histogram_match,
    resample_quantiles,
    sorted_activations,
    wasserstein_barycenter,
)
from stylefw.run import run


def naive_quantile(sorted_values: list[float], level: float) -> float:
    """numpy's default (linear) quantile of already sorted values."""
    position = level * (len(sorted_values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    return sorted_values[below] + (position - below) * (sorted_values[above] - sorted_values[below])


def naive_match(features: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """R(O) with loops: per image and channel, the k-th smallest output value (ties by position)
    becomes the style's quantile at level k/(N-1)."""
    batch, channels, height, width = features.shape
    matched = torch.zeros_like(features)
    for c in range(channels):
        target = sorted(style[:, c].flatten().tolist())
        for b in range(batch):
            values = features[b, c].flatten().tolist()
            ranks = sorted(range(len(values)), key=lambda k: (values[k], k))
            for rank, position in enumerate(ranks):
                level = rank / (len(values) - 1) if len(values) > 1 else 0.5
                matched[b, c, position // width, position % width] = naive_quantile(target, level)
    return matched


def naive_histogram_loss(features: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    return ((features - naive_match(features, style)) ** 2).sum() / features.numel()


class TestFunctions:
    def test_match_and_loss_equal_the_naive_reference_when_sizes_differ(self) -> None:
        features = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        style = torch.rand(1, 3, 3, 3, dtype=torch.float64) * 4
        target = sorted_activations(style)
        torch.testing.assert_close(histogram_match(features, target), naive_match(features, style))
        torch.testing.assert_close(histogram_loss(features, target), naive_histogram_loss(features, style))

    def test_resampling_is_the_linear_quantile(self) -> None:
        values = torch.randn(3, 7, dtype=torch.float64).sort(dim=-1).values
        for length in (1, 2, 5, 7, 12):
            levels = torch.linspace(0, 1, length, dtype=torch.float64) if length > 1 else torch.tensor([0.5])
            expected = torch.quantile(values, levels.to(values.dtype), dim=-1).T
            torch.testing.assert_close(resample_quantiles(values, length), expected)

    def test_equal_sizes_place_the_target_values_at_the_output_ranks(self) -> None:
        features = torch.randn(1, 4, 5, 5, dtype=torch.float64)
        style = torch.randn(1, 4, 5, 5, dtype=torch.float64) ** 3
        matched = histogram_match(features, sorted_activations(style)).reshape(4, 25)
        flat = features.reshape(4, 25)
        torch.testing.assert_close(matched.sort(dim=-1).values, sorted_activations(style), rtol=0, atol=0)
        assert torch.equal(matched.argsort(dim=-1), flat.argsort(dim=-1))

    def test_interpolates_the_target_quantiles_when_sizes_differ(self) -> None:
        style = torch.tensor([4.0, 0.0, 3.0, 1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 5)
        features = torch.tensor([0.9, -1.0, 0.1, 0.3, 0.2, 0.5, 0.4, 0.7, 0.6], dtype=torch.float64).view(1, 1, 3, 3)
        matched = histogram_match(features, sorted_activations(style)).flatten()
        ranks = features.flatten().argsort().argsort().to(torch.float64)
        torch.testing.assert_close(matched, ranks * 0.5)  # target quantiles 0, 0.5, ..., 4 at the output's ranks

    def test_loss_is_zero_for_a_rearrangement_of_the_target(self) -> None:
        style = torch.randn(1, 3, 4, 4, dtype=torch.float64)
        shuffled = style.flatten(2)[..., torch.randperm(16)].reshape(style.shape)
        assert histogram_loss(shuffled, sorted_activations(style)).item() == 0.0
        assert histogram_loss(shuffled + 0.1, sorted_activations(style)).item() == pytest.approx(0.01)

    def test_gradient_treats_the_match_as_a_constant(self) -> None:
        features = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        target = sorted_activations(torch.rand(1, 2, 4, 4, dtype=torch.float64))
        histogram_loss(features, target).backward()
        expected = 2 * (features - histogram_match(features, target)) / features.numel()
        torch.testing.assert_close(features.grad, expected.detach())
        # With distinct values the ranks, hence R(O), are locally constant: finite differences agree.
        assert torch.autograd.gradcheck(lambda f: histogram_loss(f, target), (features.detach().requires_grad_(),))

    def test_descending_the_loss_pulls_the_histograms_together(self) -> None:
        style = torch.randn(1, 3, 6, 6, dtype=torch.float64).relu() * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1)
        target = sorted_activations(style)
        features = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.SGD([features], lr=features.numel() / 8)

        def gap() -> float:  # 1-D Wasserstein-2 distance per channel, summed
            return (sorted_activations(features.detach()) - resample_quantiles(target, 64)).pow(2).mean().item()

        start = gap()
        for _ in range(30):
            optimizer.zero_grad()
            histogram_loss(features, target).backward()
            optimizer.step()
        assert gap() < 1e-3 * start
        torch.testing.assert_close(sorted_activations(features.detach()), resample_quantiles(target, 64),
                                   rtol=0, atol=1e-2)


class TestBarycenter:
    def test_shifted_distributions_blend_to_the_weighted_mean_shift(self) -> None:
        base = torch.randn(3, 10, dtype=torch.float64).sort(dim=-1).values
        blended = wasserstein_barycenter([base, base + 4.0], [0.25, 0.75])
        torch.testing.assert_close(blended, base + 3.0)

    def test_different_lengths_resample_to_the_longest(self) -> None:
        short = torch.linspace(0, 1, 5, dtype=torch.float64).repeat(2, 1)
        long = torch.linspace(0, 1, 9, dtype=torch.float64).repeat(2, 1) * 3 + 2  # uniform on [2, 5]
        blended = wasserstein_barycenter([short, long], [0.5, 0.5])
        torch.testing.assert_close(blended, torch.linspace(1, 3, 9, dtype=torch.float64).repeat(2, 1))

    def test_module_blends_styles_into_the_barycenter(self) -> None:
        first, second = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 4, 4) + 2
        term = HistogramLoss(layers=["a"])
        term.set_targets([{"a": first}, {"a": second}], [0.3, 0.7])
        expected = wasserstein_barycenter([sorted_activations(first), sorted_activations(second)], [0.3, 0.7])
        torch.testing.assert_close(term.target("a"), expected)
        assert term.target("a").shape == (2, 16)


class TestModule:
    def test_module_is_the_weighted_mean_of_the_function_over_layers(self) -> None:
        style = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
        image = {"a": torch.randn(1, 3, 6, 6), "b": torch.randn(1, 5, 3, 3)}
        term = HistogramLoss(weight=7.0, layers=["a", "b"])
        term.set_targets([style], [1.0])
        expected = 7.0 * 0.5 * (histogram_loss(image["a"], sorted_activations(style["a"]))
                                + histogram_loss(image["b"], sorted_activations(style["b"])))
        torch.testing.assert_close(term(image, torch.zeros(1)), expected)

    def test_targets_are_sorted_non_persistent_buffers(self) -> None:
        term = HistogramLoss(layers=["a"])
        features = torch.randn(1, 3, 4, 4, requires_grad=True)
        term.set_targets([{"a": features}], [1.0])
        target = term.target("a")
        assert not target.requires_grad and target.shape == (3, 16)
        assert torch.equal(target, target.sort(dim=-1).values)
        assert "target_a" in dict(term.named_buffers()) and term.state_dict() == {}
        assert term.target_image == "style"

    def test_defaults_are_the_papers_layers(self) -> None:
        assert HistogramLoss().layers == ("relu1_1", "relu4_1")


def test_tiny_run_with_gram_and_hist(compose_cfg, tmp_path: Path) -> None:
    metrics = run(compose_cfg("loss=[gram,hist,tv]"), tmp_path)
    assert metrics["status"] == "completed"
    assert set(metrics["loss"]) == {"content", "gram", "hist", "tv", "total"}
    assert math.isfinite(metrics["loss"]["hist"]) and metrics["loss"]["hist"] > 0
