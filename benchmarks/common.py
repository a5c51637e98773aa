"""Shared helpers for the benchmarks: compose stylefw's config, time things, print tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from stylefw.schema import register_schema

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def compose_config(*overrides: str) -> DictConfig:
    """The config `stylefw <overrides>` would run."""
    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="stylefw.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so results paste into the README as they are."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save_strip(path: Path, images: list[torch.Tensor]) -> None:
    from stylefw.image.io import save_png

    height = min(image.shape[-2] for image in images)
    resized = [torch.nn.functional.interpolate(image, size=(height, round(image.shape[-1] * height / image.shape[-2])),
                                               mode="bilinear", antialias=True) for image in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(torch.cat(resized, dim=-1), path)
