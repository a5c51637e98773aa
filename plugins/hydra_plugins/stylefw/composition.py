"""How stylefw's configs compose, beyond Hydra's own rules: `loss=gram+hist`, and the types of every option's keys.

- `loss=gram+hist`: a config source answers `<group>/<a>+<b>` with the defaults list `[a, b]`.
  Hydra loads each part as `<group>/<part>` from wherever it lives (built-in, an installed
  plugin package, a `hydra.searchpath` entry), so `loss=gram+hist` composes exactly like the
  native `loss=[gram,hist]`, while the choice is one plain string that sweeps
  (`-m loss=gram,gram+hist`) and is recorded in `hydra.runtime.choices.loss`.
- Schemas: each built-in option's YAML starts its defaults list with its schema,
  `/schema/<group>/<name>@_here_`, and Hydra merges the YAML onto it, checking every value's type,
  so `method.steps=abc` or `net.depthwise=maybe` fail while Hydra composes. The values stay in the
  YAML files; ranges (`steps >= 1`) are checked by the plugins with stylefw.errors' helpers,
  which name the fix. The schemas live in the `schema/` group tree, which `stylefw --help`
  leaves out. A third-party plugin package can register schemas for its own options the same way.

Hydra imports every module under `hydra_plugins` when any Hydra app starts, which is what
registers both; this module imports only the standard library, hydra and omegaconf. It does
not use `from __future__ import annotations`: the dataclasses are built while Hydra imports
the module, before it is in sys.modules, and OmegaConf reads their annotations at runtime.
"""

import sys
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra._internal.config_repository import IConfigRepository
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import MISSING, OmegaConf

COMPOSABLE_GROUPS = ("loss",)
SEPARATOR = "+"  # so option names must never contain '+' (a real file named 'a+b.yaml' would win)
SCHEME = "stylefw-combo"
STYLEFW_CONFIG_PATH = "pkg://stylefw.conf"


def split_combination(config_path: str) -> tuple[str, list[str]] | None:
    """`("loss", ["gram", "hist"])` for `loss/gram+hist[.yaml]`; None for anything else."""
    group, slash, name = config_path.removesuffix(".yaml").rpartition("/")
    if not slash or group not in COMPOSABLE_GROUPS or SEPARATOR not in name:
        return None
    parts = name.split(SEPARATOR)
    return (group, parts) if all(parts) else None


def _calling_repository() -> IConfigRepository | None:
    """The config repository that asked this source for a config, found on the call stack.

    Hydra's ConfigSource API gives a source no view of the other sources, yet only the calling
    repository knows every option of a group, including `hydra.searchpath` entries (the
    application-wide repository lacks those). If Hydra's internals change and none is found,
    combinations still compose; only the friendlier error for an unknown part is lost.
    """
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, IConfigRepository):
            return candidate
        frame = frame.f_back
    return None


def check_parts(group: str, parts: list[str], repository: IConfigRepository) -> None:
    """Refuse a repeated part; for an unknown one raise Hydra's MissingConfigException, listing the group's options."""
    name = SEPARATOR.join(parts)
    repeated = sorted({part for part in parts if parts.count(part) > 1})
    if repeated:
        raise ConfigCompositionException(
            f"{group}={name}: '{repeated[0]}' appears more than once; name each {group} option once"
        )
    unknown = [part for part in parts if not repository.config_exists(f"{group}/{part}")]
    if unknown:
        options = repository.get_group_options(group, ObjectType.CONFIG)
        raise MissingConfigException(
            f"{group}={name}: no {group} option '{unknown[0]}'. Available options in '{group}': "
            f"{', '.join(options)} (combine any of them with '{SEPARATOR}')",
            missing_cfg_file=f"{group}/{unknown[0]}",
            options=options,
        )


class CombinationConfigSource(ConfigSource):
    """Virtual configs `loss/a+b+…` whose only content is the defaults list `[a, b, …]`, in that order."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return False

    def is_config(self, config_path: str) -> bool:
        return split_combination(config_path) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        return []  # combinations are unbounded: `--help` lists the single options

    def load_config(self, config_path: str) -> ConfigResult:
        combination = split_combination(config_path)
        if combination is None:
            raise ValueError(f"{SCHEME}: '{config_path}' is not a '<group>/a+b' combination")
        group, parts = combination
        repository = _calling_repository()
        if repository is not None:
            check_parts(group, parts, repository)
        return ConfigResult(
            provider=self.provider,
            path=f"{self.scheme()}://{config_path}",
            config=OmegaConf.create({"defaults": parts}),
            header={"package": None},
        )


class StylefwSearchPathPlugin(SearchPathPlugin):
    """Appends the combination source to stylefw's search path, after all real config directories.

    Hydra calls every SearchPathPlugin for every Hydra app; other apps are left alone.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if any(element.path == STYLEFW_CONFIG_PATH for element in search_path.get_path()):
            search_path.append(provider="stylefw", path=f"{SCHEME}://")


# --------------------------------------------------------------------------- schemas

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
    resident: bool = MISSING
    flip: bool = MISSING


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
