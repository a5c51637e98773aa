"""Each loss function against a naive reference implementation, and each module against its function."""

from __future__ import annotations

import pytest
import torch

from stylefw.plugins.losses.content import ContentLoss, content_loss
from stylefw.plugins.losses.gram import GramLoss, gram_loss, gram_matrix
from stylefw.plugins.losses.tv import TotalVariationLoss, total_variation


def naive_gram(features: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = features.shape
    gram = torch.zeros(batch, channels, channels, dtype=features.dtype)
    for b in range(batch):
        for i in range(channels):
            for j in range(channels):
                gram[b, i, j] = sum(features[b, i, y, x] * features[b, j, y, x]
                                    for y in range(height) for x in range(width))
    return gram / (channels * height * width)


def naive_tv(image: torch.Tensor) -> torch.Tensor:
    _, _, height, width = image.shape
    horizontal = [(image[:, :, y, x + 1] - image[:, :, y, x]) ** 2 for y in range(height) for x in range(width - 1)]
    vertical = [(image[:, :, y + 1, x] - image[:, :, y, x]) ** 2 for y in range(height - 1) for x in range(width)]
    return torch.stack(horizontal).mean() + torch.stack(vertical).mean()


class TestGram:
    def test_matches_naive_reference(self) -> None:
        features = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        torch.testing.assert_close(gram_matrix(features), naive_gram(features))

    def test_loss_matches_naive_reference(self) -> None:
        features = torch.randn(1, 3, 4, 4, dtype=torch.float64)
        target = torch.randn(1, 3, 3, dtype=torch.float64)
        expected = sum((naive_gram(features)[0, i, j] - target[0, i, j]) ** 2 for i in range(3) for j in range(3)) / 9
        torch.testing.assert_close(gram_loss(features, target), expected)

    def test_gram_is_size_invariant_for_a_tiled_texture(self) -> None:
        tile = torch.randn(1, 4, 3, 3)
        torch.testing.assert_close(gram_matrix(tile.repeat(1, 1, 4, 4)), gram_matrix(tile))

    def test_gradcheck(self) -> None:
        features = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        target = torch.randn(1, 2, 2, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda f: gram_loss(f, target), (features,))

    def test_module_is_weighted_mean_over_layers(self) -> None:
        style = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
        image = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
        term = GramLoss(weight=7.0, layers=["a", "b"])
        term.set_targets([style], [1.0])
        expected = 7.0 * 0.5 * (gram_loss(image["a"], gram_matrix(style["a"]))
                                + gram_loss(image["b"], gram_matrix(style["b"])))
        torch.testing.assert_close(term(image, torch.zeros(1)), expected)

    def test_targets_are_frozen_non_persistent_buffers(self) -> None:
        term = GramLoss(layers=["a"])
        features = torch.randn(1, 3, 4, 4, requires_grad=True)
        term.set_targets([{"a": features}], [1.0])
        assert not term.target("a").requires_grad
        assert "target_a" in dict(term.named_buffers())
        assert term.state_dict() == {}

    def test_layer_weights_must_match_layers(self) -> None:
        from stylefw.errors import StylefwError

        with pytest.raises(StylefwError, match="one weight per layer"):
            GramLoss(layers=["a", "b"], layer_weights=[1.0])


class TestContent:
    def test_matches_naive_reference(self) -> None:
        features, target = torch.randn(1, 2, 3, 3, dtype=torch.float64), torch.randn(1, 2, 3, 3, dtype=torch.float64)
        naive = sum(float((features.flatten()[i] - target.flatten()[i]) ** 2) for i in range(18)) / 18
        assert content_loss(features, target).item() == pytest.approx(naive)

    def test_zero_at_the_target_and_module_matches_function(self) -> None:
        content = {"relu4_2": torch.randn(1, 4, 3, 3)}
        term = ContentLoss(weight=3.0)
        term.set_targets([content], [1.0])
        assert term(content, torch.zeros(1)).item() == 0.0
        other = {"relu4_2": torch.randn(1, 4, 3, 3)}
        torch.testing.assert_close(term(other, torch.zeros(1)), 3.0 * content_loss(other["relu4_2"], content["relu4_2"]))


class TestTotalVariation:
    def test_matches_naive_reference(self) -> None:
        image = torch.rand(1, 3, 5, 6, dtype=torch.float64)
        torch.testing.assert_close(total_variation(image), naive_tv(image))

    def test_constant_image_has_none_and_noise_has_more_than_a_gradient(self) -> None:
        assert total_variation(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
        ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
        assert total_variation(torch.rand(1, 3, 8, 8)).item() > 10 * total_variation(ramp).item()

    def test_module_reads_pixels_not_features(self) -> None:
        image = torch.rand(1, 3, 5, 5)
        term = TotalVariationLoss(weight=2.0)
        assert term.layers == ()
        torch.testing.assert_close(term({}, image), 2.0 * total_variation(image))


class TestFusedGram:
    """The fused head must equal autograd through gram_loss, in value and gradient."""

    @pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 4, 3, 3)])
    def test_gradcheck_including_the_target(self, shape: tuple[int, ...]) -> None:
        from stylefw.plugins.losses.gram import GramMSE

        features = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        asymmetric_target = torch.randn(shape[1], shape[1], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(GramMSE.apply, (features, asymmetric_target))

    @pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 4, 3, 3)])
    def test_gradcheck_on_channels_last_features(self, shape: tuple[int, ...]) -> None:
        from stylefw.plugins.losses.gram import GramMSE

        features = torch.randn(*shape, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
        target = torch.randn(shape[1], shape[1], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(GramMSE.apply, (features, target))
        (grad,) = torch.autograd.grad(GramMSE.apply(features, target), features)
        assert grad.is_contiguous(memory_format=torch.channels_last)  # the backbone's backward keeps its layout
        assert grad._base is None  # not a view: autograd can add the backbone's gradient into it in place

    @pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
    def test_matches_autograd_through_gram_loss(self, memory_format: torch.memory_format) -> None:
        from stylefw.plugins.losses.gram import fused_gram_loss

        features = torch.randn(2, 16, 12, 10).to(memory_format=memory_format).requires_grad_()
        target = gram_matrix(torch.randn(1, 16, 12, 10))
        reference, fused = gram_loss(features, target), fused_gram_loss(features, target)
        (reference_grad,), (fused_grad,) = (torch.autograd.grad(loss, features) for loss in (reference, fused))
        torch.testing.assert_close(fused, reference)
        torch.testing.assert_close(fused_grad, reference_grad, rtol=1e-5, atol=1e-9)
