"""The Johnson transform net plugin: layer plan, any image size, instance norm with shareable statistics."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from stylefw.errors import StylefwError
from stylefw.plugins.nets.johnson import InstanceNorm, TransformNet


def naive_instance_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Reference: loops over images and channels, population variance."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            values = x[b, c]
            mean = values.sum() / values.numel()
            variance = ((values - mean) ** 2).sum() / values.numel()
            out[b, c] = weight[c] * (values - mean) / torch.sqrt(variance + eps) + bias[c]
    return out


def test_instance_norm_matches_the_formula() -> None:
    norm = InstanceNorm(3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.0, 3.0]))
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64) * 4 + 1
    expected = naive_instance_norm(x, norm.weight.detach(), norm.bias.detach(), norm.eps)
    torch.testing.assert_close(norm(x), expected)
    variance, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    norm.shared = (mean, variance)  # the shared-statistics path computes the same thing with given statistics
    torch.testing.assert_close(norm(x), expected)


def test_full_net_is_johnsons_size() -> None:
    """1.68 M parameters: 9x9 conv 32, 3x3/2 64, 3x3/2 128, 5 residual blocks, 2 upsample+conv, 9x9 conv 3."""
    net = TransformNet()
    assert sum(p.numel() for p in net.parameters()) == 1_679_235
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules()) == sum(
        isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1) for m in net.modules())


@pytest.mark.parametrize(("option", "parameters"), [("johnson", 1_679_235), ("slim", 24_291)])
def test_net_options_instantiate(compose_cfg, option: str, parameters: int) -> None:
    net = instantiate(compose_cfg("method=fast", f"net={option}").net)
    assert isinstance(net, TransformNet) and sum(p.numel() for p in net.parameters()) == parameters


def test_method_fast_picks_the_slim_net_and_the_image_folder(compose_cfg) -> None:
    cfg = compose_cfg("method=fast")
    assert cfg.net.width == 0.25 and cfg.net.depthwise and cfg.data._target_.endswith("ImageFolderData")
    assert compose_cfg().net is None and compose_cfg().data is None  # method=pixel has neither


@pytest.mark.parametrize("shape", [(16, 16), (33, 47), (64, 50), (17, 31)])
def test_any_image_size_keeps_its_size(shape: tuple[int, int]) -> None:
    net = TransformNet(width=0.125, residual_blocks=1).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, *shape)).shape == (1, 3, *shape)


def test_shared_statistics_of_the_image_itself_change_nothing() -> None:
    net = TransformNet(width=0.25, residual_blocks=2, depthwise=True).eval()
    image = torch.rand(1, 3, 40, 52)
    statistics = net.capture_statistics(image)
    assert len(statistics) == len(net.norms()) == 3 + 2 * 2 + 2
    with torch.no_grad():
        plain = net(image)
        with net.shared_statistics(statistics):
            shared = net(image)
        other = net.capture_statistics(torch.rand(1, 3, 40, 52) * 0.2)
        with net.shared_statistics(other):
            foreign = net(image)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)
    assert (foreign - plain).abs().max() > 1e-2  # other statistics do change the output
    assert all(norm.shared is None for norm in net.norms())  # the context manager cleans up


@pytest.mark.parametrize(("kwargs", "message"), [({"width": 0}, "net.width=0"), ({"width": "wide"}, "net.width=wide"),
                                                 ({"residual_blocks": -1}, "net.residual_blocks")])
def test_bad_net_options_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(StylefwError, match=message):
        TransformNet(**kwargs)
