"""A built wheel carries the configs, the bundled images and the plugins (so `pip install .` works)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_configs_assets_and_plugins(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    names = set(zipfile.ZipFile(next(tmp_path.glob("stylefw-*.whl"))).namelist())
    for required in ("stylefw/conf/config.yaml", "stylefw/conf/backbone/vgg19.yaml", "stylefw/conf/loss/gram.yaml",
                     "stylefw/assets/astronaut.jpg", "stylefw/assets/church_at_auvers.jpg",
                     "stylefw/plugins/backbones/vgg.py", "stylefw/plugins/methods/pixel.py", "stylefw/cli.py",
                     "hydra_plugins/stylefw/__init__.py", "hydra_plugins/stylefw/composition.py",
                     "hydra_plugins/stylefw/config_groups.py"):
        assert required in names, required
    assert not any(name.startswith("plugins/") for name in names)  # no top-level `plugins` module
    assert "hydra_plugins/__init__.py" not in names  # a namespace package shared with every other Hydra plugin
    assert not any(name.startswith(("examples/", "stylefw/plugins/hydra_plugins")) for name in names)
    # Every module in the wheel is one of the sources (a stale build/ folder would ship moved or deleted modules).
    sources = {"stylefw/plugins/": "plugins/", "stylefw/conf/": "conf/", "hydra_plugins/": "plugins/hydra_plugins/",
               "stylefw/": "stylefw/"}
    for name in (name for name in names if name.endswith(".py")):
        prefix = next(prefix for prefix in sources if name.startswith(prefix))
        assert (ROOT / (sources[prefix] + name[len(prefix):])).is_file(), name
