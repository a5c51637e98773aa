"""Shared fixtures: composed configs for tiny, offline, random-weight runs."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from stylefw.schema import register_schema

TINY_RUN = [
    "backbone.weights=random",
    "backbone.width=0.125",
    "size=32",
    "method.steps=3",
    "method.log_every=1",
    "logger=none",
]
TINY_METRICS = ["metrics.backbone.weights=random", "++metrics.backbone.width=0.125", "metrics.size=32"]
TINY = [*TINY_RUN, *TINY_METRICS]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """compose_cfg(*overrides, tiny=True): the config the CLI would build for those overrides."""
    GlobalHydra.instance().clear()
    register_schema()
    with initialize_config_module(config_module="stylefw.conf", version_base="1.3"):
        def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
            return compose(config_name="config", overrides=[*(TINY if tiny else []), *overrides])

        yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_image(tmp_path: Path) -> Path:
    """A 40x30 RGB gradient PNG on disk."""
    from PIL import Image
    import numpy as np

    y, x = np.mgrid[0:30, 0:40]
    pixels = np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(pixels).save(path)
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def stylefw_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """stylefw_cli(*args, tiny=True): the `stylefw` command run in this process from tmp_path (no start-up cost)."""
    from stylefw import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # cli.main() installs its own

    def _run(*args: str, tiny: bool = True) -> CliResult:
        monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # cli.main() sets it to 1; monkeypatch restores it afterwards
        monkeypatch.setattr(sys, "argv", ["stylefw", *(TINY if tiny else []), *args])
        GlobalHydra.instance().clear()
        capsys.readouterr()
        code = 0
        try:
            cli.main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        finally:
            GlobalHydra.instance().clear()
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run
