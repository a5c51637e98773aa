"""Shared fixtures: composed configs for tiny, offline, random-weight runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

TINY = [
    "backbone.weights=random",
    "backbone.width=0.125",
    "size=32",
    "method.steps=3",
    "method.log_every=1",
    "logger=none",
]


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """compose_cfg(*overrides, tiny=True): the config the CLI would build for those overrides."""
    GlobalHydra.instance().clear()
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
