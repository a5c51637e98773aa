"""`loss=gram+hist`: a config source that answers `<group>/<a>+<b>` with the defaults list `[a, b]`.

Hydra loads each part as `<group>/<part>` from wherever it lives (built-in, an installed
plugin package, a `hydra.searchpath` entry), so `loss=gram+hist` composes exactly like the
native `loss=[gram,hist]`, while the choice is one plain string that sweeps
(`-m loss=gram,gram+hist`) and is recorded in `hydra.runtime.choices.loss`.

Hydra imports every module under `hydra_plugins` when any Hydra app starts, so this module
imports only the standard library, hydra and omegaconf.
"""

from __future__ import annotations

import sys

from hydra._internal.config_repository import IConfigRepository
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

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
