"""The objective runs the backbone once per evaluation, only as deep as needed, with targets computed once."""

from __future__ import annotations

import torch

from stylefw.objective.objective import Objective
from stylefw.plugins.backbones.vgg import VGG
from stylefw.plugins.losses.content import ContentLoss
from stylefw.plugins.losses.gram import GramLoss
from stylefw.plugins.losses.tv import TotalVariationLoss


def build(**weights: float) -> Objective:
    backbone = VGG(weights="random", width=0.125)
    terms = {
        "content": ContentLoss(weight=weights.get("content", 1.0), layers=["relu4_2"]),
        "gram": GramLoss(weight=weights.get("gram", 1.0), layers=["relu1_1", "relu3_1"]),
        "tv": TotalVariationLoss(weight=weights.get("tv", 1.0)),
    }
    return Objective(backbone, terms)


def count_layer_calls(objective: Objective) -> dict[str, int]:
    calls = {name: 0 for name in objective.backbone.layer_names}

    def hook(name: str):
        def _count(module, inputs, output):
            calls[name] += 1
        return _count

    for name, layer in objective.backbone.layers.named_children():
        layer.register_forward_hook(hook(name))
    return calls


def test_backbone_truncated_after_deepest_used_layer() -> None:
    assert build().backbone.layer_names[-1] == "relu4_2"
    assert build(content=0).backbone.layer_names[-1] == "relu3_1"


def test_one_backbone_pass_per_evaluation_and_targets_once() -> None:
    objective = build()
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    objective.set_targets(content=content, style=style)
    calls = count_layer_calls(objective)
    image = content.clone().requires_grad_(True)
    for _ in range(3):
        total, parts = objective(image)
        total.backward()
    assert set(calls.values()) == {3}
    assert set(parts) == {"content", "gram", "tv"}
    torch.testing.assert_close(total, sum(parts.values()))


def test_zero_weight_terms_are_dropped() -> None:
    objective = build(content=0.0)
    assert set(objective.terms) == {"gram", "tv"}
    assert objective.layers_for("content") == ()


def test_content_term_is_zero_at_the_content_image() -> None:
    objective = build()
    content = torch.rand(1, 3, 32, 32)
    objective.set_targets(content=content, style=torch.rand(1, 3, 32, 32))
    _, parts = objective(content)
    assert parts["content"].item() == 0.0 and parts["gram"].item() > 0


def test_only_the_image_gets_gradients() -> None:
    objective = build()
    objective.set_targets(content=torch.rand(1, 3, 32, 32), style=torch.rand(1, 3, 32, 32))
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    objective(image)[0].backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in objective.parameters())
    assert all(not b.requires_grad for b in objective.buffers())


def test_several_style_images_blend_their_gram_targets() -> None:
    objective = build()
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 24, 40)
    objective.set_targets(weights={"style": [3, 1]}, content=torch.rand(1, 3, 32, 32), style=[a, b])
    gram = objective.terms["gram"]
    with torch.no_grad():
        features_a, features_b = objective.backbone(a, gram.layers), objective.backbone(b, gram.layers)
    for layer in gram.layers:
        expected = 0.75 * gram.represent(features_a[layer], layer) + 0.25 * gram.represent(features_b[layer], layer)
        torch.testing.assert_close(gram.target(layer), expected)


def test_blend_weights_must_fit_the_images() -> None:
    import pytest

    from stylefw.errors import StylefwError

    objective = build()
    with pytest.raises(StylefwError, match="one non-negative weight per image"):
        objective.set_targets(weights={"style": [1.0]}, style=[torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)])


def test_under_bf16_autocast_the_backbone_runs_low_and_the_terms_in_float32() -> None:
    """bf16 training (trainer.precision=bf16-mixed): the convolutions in bf16, the loss heads in float32, and the
    loss within a fraction of a percent of the float32 one."""
    # The real weights: a random backbone's deep features are too small for a relative comparison.
    objective = Objective(VGG(weights="caffe"), {"content": ContentLoss(layers=["relu4_2"]),
                                                  "gram": GramLoss(1e4, layers=["relu1_1", "relu3_1"])})
    content, style = torch.rand(2, 3, 48, 48), torch.rand(1, 3, 48, 48)
    objective.set_targets(content=content, style=style)
    image = torch.rand(2, 3, 48, 48)
    full, full_parts = objective(image)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, low_parts = objective(image)
    assert low.dtype == torch.float32 and all(part.dtype == torch.float32 for part in low_parts.values())
    for name in ("content", "gram"):
        assert abs(low_parts[name].item() / full_parts[name].item() - 1) < 0.02, name
        assert not torch.equal(low_parts[name], full_parts[name]), name  # the convolutions did run in bf16
