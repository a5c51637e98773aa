"""Logger-agnostic helpers: images go to loggers that take them, or to PNGs in the logger's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from stylefw.images import save_png, to_pil


def log_image(logger: Any, key: str, image: torch.Tensor, step: int) -> None:
    if logger is None:
        return
    if hasattr(logger, "log_image"):
        # An 8-bit PIL image: wandb would cast a float tensor in [0, 1] straight to uint8 (all black).
        logger.log_image(key=key, images=[to_pil(image)], step=step)
        return
    log_dir = getattr(logger, "log_dir", None)
    if log_dir:
        folder = Path(log_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        save_png(image, folder / f"{key}_{step:06d}.png")


def log_metrics(logger: Any, values: dict[str, float], step: int) -> None:
    if logger is not None and values:
        logger.log_metrics(values, step=step)


def finish(logger: Any, status: str) -> None:
    """Flush the logger and close its run, so a second run in this process starts a new one."""
    if logger is None:
        return
    logger.finalize(status)
    closer = getattr(logger, "finish", None)
    if callable(closer):
        closer()


class ImageLogger(pl.Callback):
    """Logs the module's current image every `every` steps (0 = never)."""

    def __init__(self, every: int, key: str = "image") -> None:
        self.every = every
        self.key = key

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self.every and step % self.every == 0 and trainer.logger is not None:
            log_image(trainer.logger, self.key, pl_module.current_image(), step)
