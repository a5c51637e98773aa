"""Typed schema of the primary config: `size=abc` or `seed=1.5` fail while Hydra composes, before any work.

Hydra merges ``conf/config.yaml`` onto :class:`StylefwConfig` (the first entry of its
``defaults``), so every top-level key must be declared here, including one field per config
group. Types are checked here; ranges (``size >= 1``, ...) are checked by ``stylefw.run.validate``
with a message naming the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

SCHEMA_NAME = "stylefw_schema"
PILLOW_MAX_IMAGE_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3


# OmegaConf reads these annotations at runtime, so they stay in typing's spelling (no `int | None`).
@dataclass
class StylefwConfig:
    # Config groups (plugins): each holds the chosen option's node; their own keys are checked when built.
    backbone: Any = None
    content_loss: Any = None
    loss: Any = None
    method: Any = None
    optimizer: Any = None
    trainer: Any = None
    logger: Any = None
    metrics: Any = None

    content: str = "astronaut"  # an image path or a bundled name
    style: Any = "church_at_auvers"  # an image path or a bundled name (or several, where a method blends them)
    size: int = 512
    seed: int = 0
    threads: Optional[int] = None
    output: Optional[str] = None
    overwrite: bool = False
    verbose: bool = False
    debug: bool = False
    max_image_pixels: Optional[int] = PILLOW_MAX_IMAGE_PIXELS


def register_schema() -> None:
    """Make ``stylefw_schema`` (named in conf/config.yaml's defaults) available to Hydra; idempotent."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=StylefwConfig)
