"""Types of the built-in plugins' keys: ``method.steps=abc`` or ``net.depthwise=maybe`` fail while Hydra composes.

Each option's YAML starts its defaults list with its schema, ``/schema/<group>/<name>@_here_``, and
Hydra merges the YAML onto it, checking every value's type. The values themselves stay in the
YAML files; ranges (``steps >= 1``) are checked by the plugins with stylefw.errors' helpers, which
name the fix. The schemas live in the ``schema/`` group tree, which ``stylefw --help`` leaves out.

Hydra imports every module under ``hydra_plugins`` when any Hydra app starts, which is what
registers these; this module imports only the standard library, hydra and omegaconf. A
third-party plugin package can register schemas for its own options the same way.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SCHEMA_GROUP = "schema"


# OmegaConf reads these annotations at runtime, so they stay in typing's spelling (no `int | None`).
@dataclass
class Plugin:
    _target_: str = MISSING


@dataclass
class PixelMethod(Plugin):
    steps: int = MISSING
    init: str = MISSING
    log_every: int = MISSING
    image_every: int = MISSING
    clamp: bool = MISSING
    pixel_scale: float = MISSING
    scales: Any = MISSING  # a number of passes or a list of sizes
    pyramid_levels: int = MISSING


@dataclass
class FastMethod(Plugin):
    steps: int = MISSING
    checkpoint_every: int = MISSING
    val_every: int = MISSING
    log_every: int = MISSING
    tile: int = MISSING
    overlap: int = MISSING
    teacher: Optional[str] = None


@dataclass
class ImageFolder(Plugin):
    root: Optional[str] = None
    crop: int = MISSING
    longest_side: Optional[int] = None
    batch_size: int = MISSING
    val_count: int = MISSING
    workers: int = MISSING


@dataclass
class TransformNet(Plugin):
    width: float = MISSING
    residual_blocks: int = MISSING
    depthwise: bool = MISSING
    residual_output: bool = MISSING


@dataclass
class VGG(Plugin):
    arch: str = MISSING
    weights: str = MISSING
    pooling: str = MISSING
    width: float = MISSING
    seed: int = MISSING
    channels_last: bool = MISSING


@dataclass
class QualityMetrics(Plugin):
    backbone: Any = MISSING
    size: Optional[int] = MISSING
    style_layers: List[str] = field(default_factory=list)
    projections: int = MISSING
    quantiles: int = MISSING
    seed: int = MISSING
    blur: float = MISSING


@dataclass
class LossTerm(Plugin):
    weight: float = MISSING


@dataclass
class FeatureTerm(LossTerm):
    layers: List[str] = field(default_factory=list)
    layer_weights: Optional[List[float]] = None


@dataclass
class ShiftedGramTerm(FeatureTerm):
    shifts: Any = MISSING  # one δ or one list of δ per layer


@dataclass
class Adam(Plugin):
    _partial_: bool = True
    lr: float = MISSING


@dataclass
class LBFGS(Plugin):
    _partial_: bool = True
    lr: float = MISSING
    history_size: int = MISSING
    max_step: Optional[float] = None


@dataclass
class TorchLBFGS(Plugin):
    _partial_: bool = True
    lr: float = MISSING
    max_iter: int = MISSING
    history_size: int = MISSING


SCHEMAS: dict[str, dict[str, Any]] = {
    "method": {"pixel": PixelMethod, "fast": FastMethod},
    "data": {"image_folder": ImageFolder},
    "net": {"transform_net": TransformNet},
    "backbone": {"vgg": VGG},
    "metrics": {"quality": QualityMetrics},
    "content_loss": {"content": FeatureTerm},
    # A loss option's node holds its term under the term's name (loss/gram.yaml: `gram: {...}`).
    "loss": {"gram": {"gram": FeatureTerm}, "hist": {"hist": FeatureTerm}, "tv": {"tv": LossTerm},
             "shifted_gram": {"shifted_gram": ShiftedGramTerm}},
    "optimizer": {"adam": Adam, "lbfgs": LBFGS, "lbfgs_torch": TorchLBFGS},
}

for _group, _options in SCHEMAS.items():
    for _name, _node in _options.items():
        ConfigStore.instance().store(group=f"{SCHEMA_GROUP}/{_group}", name=_name, node=_node)
