"""Typed schema of the primary config: `size=abc` or `seed=1.5` fail while Hydra composes, before any work.

Hydra merges ``conf/config.yaml`` onto :class:`StylefwConfig` (the first entry of its
``defaults``), so every top-level key must be declared here, including one field per config
group; the options of the groups carry their own schemas (plugins/hydra_plugins/stylefw/composition.py).
Types are checked here; ranges (``size >= 1``, ...) are checked by ``stylefw.run.check_config``
with a message naming the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from PIL import Image

SCHEMA_NAME = "stylefw_schema"


# OmegaConf reads these annotations at runtime, so they stay in typing's spelling (no `int | None`).
@dataclass
class ObjectiveConfig:
    """The number a sweep's job returns (Optuna minimises it); see stylefw.sweep.objective.objective_value."""

    metric: str = "quality.style_distance"  # a key of metrics.json, dotted
    content_distance_max: Optional[float] = None  # runs above it score penalty + the excess
    penalty: float = 10.0  # failed runs score 2 x penalty; keep it above any value of the metric


@dataclass
class StylefwConfig:
    # Config groups (plugins): each holds the chosen option's node, typed by the option's own schema.
    backbone: Any = None
    content_loss: Any = None
    loss: Any = None
    method: Any = None
    optimizer: Any = None
    trainer: Any = None
    logger: Any = None
    metrics: Any = None
    hparams_search: Any = None  # an Optuna search; its options are `# @package _global_`, so this stays null
    net: Any = None  # method=fast's transform net
    data: Any = None  # method=fast's training photos

    content: str = "astronaut"  # an image path or a bundled name
    style: Any = "church_at_auvers"  # an image path or a bundled name (or several, where a method blends them)
    size: int = 512
    seed: int = 0
    threads: Optional[int] = None
    output: Optional[str] = None
    overwrite: bool = False
    verbose: bool = False
    debug: bool = False
    max_image_pixels: Optional[int] = Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb limit
    mode: Optional[str] = None  # method=fast: train, stylize or export (null: the method's default)
    checkpoint: Optional[str] = None  # method=fast: a trained net's .ckpt or training run folder
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # what a sweep minimises

    # Creative controls (stylefw/controls.py checks their ranges)
    style_weights: Optional[List[float]] = None  # one per style; null: equal
    style_scale: float = 1.0  # style images' longest side = size * style_scale
    preserve_color: Optional[str] = None  # null (off), luminance or histogram
    content_mask: Optional[str] = None  # region to stylize: white = stylize, black = keep
    mask_style: Optional[str] = None  # style for the region outside content_mask (null: keep the content)
    mask_feather: float = 8.0  # width of the mask's soft edge, in output pixels


def register_schema() -> None:
    """Make ``stylefw_schema`` (named in conf/config.yaml's defaults) available to Hydra; idempotent."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=StylefwConfig)
