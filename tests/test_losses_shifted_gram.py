"""Shifted Gram loss (Berger & Memisevic 2016) against naive loop references, and its behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from stylefw.errors import StylefwError
from stylefw.plugins.losses.gram import gram_loss, gram_matrix
from stylefw.plugins.losses.shifted_gram import (
    ShiftedGramLoss,
    shifted_gram_loss,
    shifted_gram_matrix,
    shifted_grams,
)
from stylefw.run import run


def naive_shifted_gram(features: torch.Tensor, shift: int, axis: str) -> torch.Tensor:
    """A[b, i, j] = Σ_p F_i(p + δ) F_j(p) / (C · #p) over positions p whose partner p + δ is inside."""
    batch, channels, height, width = features.shape
    dy, dx = (shift, 0) if axis == "y" else (0, shift)
    positions = [(y, x) for y in range(height - dy) for x in range(width - dx)]
    gram = torch.zeros(batch, channels, channels, dtype=features.dtype)
    for b in range(batch):
        for i in range(channels):
            for j in range(channels):
                gram[b, i, j] = sum(features[b, i, y + dy, x + dx] * features[b, j, y, x] for y, x in positions)
    return gram / (channels * len(positions))


def naive_shifted_gram_loss(features: torch.Tensor, target: torch.Tensor, shifts: list[int]) -> torch.Tensor:
    """Mean over shifts and both axes of the mean over C² of squared differences, with loops."""
    _, channels = features.shape[:2]
    terms = []
    for shift in shifts:
        for axis in ("x", "y"):
            other = naive_shifted_gram(target, shift, axis)
            mine = naive_shifted_gram(features, shift, axis)
            terms.append(sum((mine[0, i, j] - other[0, i, j]) ** 2
                             for i in range(channels) for j in range(channels)) / channels**2)
    return sum(terms) / len(terms)


class TestFunctions:
    @pytest.mark.parametrize("shift", [1, 2, 4])
    def test_matches_naive_reference_along_both_axes(self, shift: int) -> None:
        features = torch.randn(2, 3, 5, 6, dtype=torch.float64)
        torch.testing.assert_close(shifted_gram_matrix(features, shift, -1), naive_shifted_gram(features, shift, "x"))
        torch.testing.assert_close(shifted_gram_matrix(features, shift, -2), naive_shifted_gram(features, shift, "y"))

    def test_loss_matches_naive_reference(self) -> None:
        features = torch.randn(1, 3, 5, 5, dtype=torch.float64)
        style = torch.randn(1, 3, 6, 4, dtype=torch.float64)
        loss = shifted_gram_loss(features, shifted_grams(style, [1, 3]), [1, 3])
        torch.testing.assert_close(loss, naive_shifted_gram_loss(features, style, [1, 3]))

    def test_zero_shift_is_the_gram_matrix_and_loss(self) -> None:
        features = torch.randn(2, 4, 5, 3, dtype=torch.float64)
        target = torch.randn(1, 4, 4, dtype=torch.float64)
        for dim in (-1, -2):
            torch.testing.assert_close(shifted_gram_matrix(features, 0, dim), gram_matrix(features), rtol=0, atol=0)
        torch.testing.assert_close(shifted_gram_loss(features, torch.stack([target, target], dim=1), [0]),
                                   gram_loss(features, target))

    def test_sees_the_spatial_arrangement_that_the_gram_matrix_ignores(self) -> None:
        stripes = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
        stripes[:, 0, :, 0::2], stripes[:, 1, :, 1::2] = 1.0, 1.0  # channels alternate column by column
        scrambled = stripes.flatten(2)[..., torch.randperm(64)].reshape(stripes.shape)
        torch.testing.assert_close(gram_matrix(scrambled), gram_matrix(stripes))
        assert shifted_gram_loss(scrambled, shifted_grams(stripes, [1, 2]), [1, 2]).item() > 1e-3
        assert shifted_gram_loss(stripes, shifted_grams(stripes, [1, 2]), [1, 2]).item() == 0.0

    def test_gradcheck(self) -> None:
        features = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
        target = shifted_grams(torch.randn(1, 2, 5, 5, dtype=torch.float64), [1, 2])
        assert torch.autograd.gradcheck(lambda f: shifted_gram_loss(f, target, [1, 2]), (features,))


class TestModule:
    def test_module_is_the_weighted_mean_of_the_function_with_per_layer_shifts(self) -> None:
        style = {"a": torch.randn(1, 3, 6, 6), "b": torch.randn(1, 5, 4, 4)}
        image = {"a": torch.randn(1, 3, 7, 5), "b": torch.randn(1, 5, 4, 3)}
        term = ShiftedGramLoss(weight=7.0, layers=["a", "b"], shifts=[[1, 3], 2], layer_weights=[0.25, 0.75])
        term.set_targets([style], [1.0])
        expected = 7.0 * (0.25 * shifted_gram_loss(image["a"], shifted_grams(style["a"], [1, 3]), [1, 3])
                          + 0.75 * shifted_gram_loss(image["b"], shifted_grams(style["b"], [2]), [2]))
        torch.testing.assert_close(term(image, torch.zeros(1)), expected)
        assert term.shifts == {"a": (1, 3), "b": (2,)}

    def test_several_styles_blend_to_the_weighted_mean(self) -> None:
        first, second = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 6, 4)
        term = ShiftedGramLoss(layers=["a"], shifts=[[1, 2]])
        term.set_targets([{"a": first}, {"a": second}], [0.3, 0.7])
        expected = 0.3 * shifted_grams(first, [1, 2]) + 0.7 * shifted_grams(second, [1, 2])
        torch.testing.assert_close(term.target("a"), expected)

    def test_targets_are_frozen_non_persistent_buffers(self) -> None:
        term = ShiftedGramLoss(layers=["a"], shifts=[[1, 2]])
        term.set_targets([{"a": torch.randn(1, 3, 4, 4, requires_grad=True)}], [1.0])
        assert not term.target("a").requires_grad and term.target("a").shape == (1, 4, 3, 3)
        assert "target_a" in dict(term.named_buffers()) and term.state_dict() == {}
        assert term.target_image == "style"

    @pytest.mark.parametrize("shifts", [[[1]], [[1], [2], [3]], [[1], []], [[1], [-2]], [[1], [1.5]], 3, None])
    def test_shifts_must_give_non_negative_integers_for_each_layer(self, shifts) -> None:
        with pytest.raises(StylefwError, match="shifted_gram: shifts .* loss.shifted_gram.shifts=") as error:
            ShiftedGramLoss(layers=["a", "b"], shifts=shifts)
        assert "\n" not in str(error.value)

    def test_a_shift_too_large_for_the_feature_map_names_the_layer(self) -> None:
        term = ShiftedGramLoss(layers=["a", "b"], shifts=[[1], [4]])
        with pytest.raises(StylefwError, match="shift 4 at b does not fit its 4x6 feature map"):
            term.set_targets([{"a": torch.randn(1, 2, 4, 6), "b": torch.randn(1, 2, 4, 6)}], [1.0])


def test_config_sets_shifts_per_layer_from_the_command_line(compose_cfg) -> None:
    cfg = compose_cfg("loss=[shifted_gram]", "loss.shifted_gram.layers=[relu1_1,relu3_1]",
                      "loss.shifted_gram.shifts=[[2,4],3]")
    term = instantiate(cfg.loss.shifted_gram)
    assert term.shifts == {"relu1_1": (2, 4), "relu3_1": (3,)}
    default = instantiate(compose_cfg("loss=[shifted_gram]").loss.shifted_gram)
    assert len(default.shifts) == len(default.layers) and all(default.shifts.values())


def test_tiny_run_with_gram_and_shifted_gram(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("loss=[gram,shifted_gram,tv]", "loss.shifted_gram.shifts=[[4,8],[2,4],[1,2],[1]]")
    metrics = run(cfg, tmp_path)
    assert metrics["status"] == "completed"
    assert math.isfinite(metrics["loss"]["shifted_gram"]) and metrics["loss"]["shifted_gram"] > 0


def test_default_shifts_on_too_small_an_image_are_a_one_line_error(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match="shift 32 at relu1_1 does not fit its .* raise size"):
        run(compose_cfg("loss=[shifted_gram]"), tmp_path)
