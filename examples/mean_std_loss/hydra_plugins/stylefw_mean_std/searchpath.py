"""Adds this package's configs to every Hydra app's search path, so `loss=mean_std` works after `pip install`.

Hydra imports every module under `hydra_plugins` at start-up, so this one imports only hydra.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MeanStdSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="stylefw_mean_std", path="pkg://stylefw_mean_std.conf")
