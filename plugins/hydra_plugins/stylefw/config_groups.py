"""`stylefw --help` lists the options of `hydra.searchpath` entries next to the built-in ones.

Hydra's own `$APP_CONFIG_GROUPS` reads only the application's search path, which leaves out
`hydra.searchpath` (hydra issue #1469), so a third-party loss added that way would be usable
but invisible. stylefw's help template calls the `stylefw_config_groups` resolver instead.

Hydra imports every module under `hydra_plugins` when any Hydra app starts, which is what
registers the resolver; this module imports only hydra and omegaconf.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from omegaconf import OmegaConf

RESOLVER = "stylefw_config_groups"


def searchpath_override(searchpath: Sequence[str]) -> str:
    """The command-line override that sets `hydra.searchpath` to `searchpath`."""
    quoted = (f"'{entry}'" if "'" not in entry else f'"{entry}"' for entry in searchpath)
    return f"hydra.searchpath=[{','.join(quoted)}]"


HIDDEN_GROUPS = ("hydra", "schema")  # Hydra's own options; the types of plugins' keys (composition.py)


def list_config_groups(loader: ConfigLoader, overrides: list[str], parent: str = "") -> list[str]:
    """Every group under `parent` that holds at least one config, depth first, but for the hidden ones."""
    groups = []
    for child in loader.get_group_options(parent, ObjectType.GROUP, overrides=overrides):
        group = f"{parent}/{child}" if parent else child
        if group in HIDDEN_GROUPS:
            continue
        if loader.get_group_options(group, ObjectType.CONFIG, overrides=overrides):
            groups.append(group)
        groups.extend(list_config_groups(loader, overrides, group))
    return groups


def config_groups_text(searchpath: Sequence[str] | None = None) -> str:
    """`group: option, option` lines, as Hydra's help prints them, over the search path plus `searchpath`."""
    if not GlobalHydra.instance().is_initialized():
        return ""
    loader = GlobalHydra.instance().config_loader()
    overrides = [searchpath_override(list(searchpath))] if searchpath else []
    lines = []
    for group in sorted(list_config_groups(loader, overrides)):
        options = sorted(loader.get_group_options(group, ObjectType.CONFIG, overrides=overrides))
        lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


if not OmegaConf.has_resolver(RESOLVER):  # Hydra's plugin scan may execute this module twice
    OmegaConf.register_new_resolver(RESOLVER, config_groups_text)
