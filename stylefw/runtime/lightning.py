"""Lightning plumbing shared by methods: a quiet Trainer, interrupt-safe fitting, a step progress bar, and the
experiment logger's images and metrics (wandb takes images, other loggers get PNGs in their folder)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from tqdm.auto import tqdm

from stylefw.image.io import save_png, to_pil

_NOISY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*module\(s\) in eval mode at the start of training.*",
    r".*is smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*The anonymous setting has no effect.*",
)
_NOISY_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning", "lightning.pytorch", "lightning.fabric")


def configure_quiet(verbose: bool) -> None:
    """Silence Lightning's and wandb's start-up chatter unless the user asks for it (verbose=true).

    Lightning resets its loggers to INFO when it is imported, which this module has done by now.
    """
    if verbose:
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def make_trainer(
    trainer_options: Mapping[str, Any],
    *,
    max_steps: int,
    logger: Any,
    callbacks: list[pl.Callback],
    log_every_n_steps: int,
    default_root_dir: Path,
    **overrides: Any,
) -> pl.Trainer:
    """A Trainer without Lightning's own bar, summary or checkpoints (methods add what they need)."""
    options: dict[str, Any] = dict(
        max_steps=max_steps,
        max_epochs=-1,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=max(1, log_every_n_steps),
        num_sanity_val_steps=0,
        default_root_dir=str(default_root_dir),
    )
    options.update(trainer_options)
    options.update(overrides)
    return pl.Trainer(**options)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so that a killed job still saves its current result."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        # Lightning ignores SIGINT while it shuts down after an interrupt; give Ctrl-C back.
        signal.signal(signal.SIGINT, previous_int)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise KeyboardInterrupt: a checkpoint write cut by a
    signal ends in torch.save's own RuntimeError (a failed run) instead of an interrupted one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]}")


def fit(trainer: pl.Trainer, module: pl.LightningModule, **fit_kwargs: Any) -> bool:
    """Run ``trainer.fit``; returns True if it was interrupted (Ctrl-C or SIGTERM) instead of raising."""
    try:
        with sigterm_as_interrupt():
            trainer.fit(module, **fit_kwargs)
    except SystemExit:
        # Lightning turns KeyboardInterrupt into sys.exit(1) after its own clean-up.
        if not trainer.interrupted:
            raise
    except KeyboardInterrupt:
        return True
    return trainer.interrupted


class StepTimer(pl.Callback):
    """Training steps per second, timed from step `warmup` (after start-up, compilation and caches) to the end;
    None when the run made no more steps than that. It waits for the device twice, not every step."""

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self._start: tuple[int, float] | None = None
        self.steps_per_second: float | None = None

    def _now(self, module: pl.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._start is None and trainer.global_step >= self.warmup:
            self._start = (trainer.global_step, self._now(pl_module))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None and trainer.global_step > self._start[0]:
            steps, started = trainer.global_step - self._start[0], self._start[1]
            self.steps_per_second = round(steps / (self._now(pl_module) - started), 2)


class StepProgressBar(pl.Callback):
    """One tqdm bar over optimisation steps showing the current loss and the ETA."""

    def __init__(self, description: str, refresh_seconds: float = 0.5) -> None:
        self.description = description
        self.refresh_seconds = refresh_seconds
        self._bar: tqdm | None = None
        self._last_refresh = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bar = tqdm(total=trainer.max_steps, desc=self.description, unit="step", dynamic_ncols=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._bar is None:
            return
        self._bar.update(trainer.global_step - self._bar.n)
        now = time.monotonic()
        # Reading the loss forces a device sync, so do it only as often as the bar redraws.
        if now - self._last_refresh >= self.refresh_seconds and isinstance(outputs, Mapping) and "loss" in outputs:
            self._last_refresh = now
            loss = outputs["loss"]
            self._bar.set_postfix_str(f"loss={float(loss.detach() if isinstance(loss, torch.Tensor) else loss):.4g}",
                                      refresh=False)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()


# --------------------------------------------------------------------------- the experiment logger


def log_image(logger: Any, key: str, image: torch.Tensor | Image.Image, step: int) -> None:
    """`image` to a logger that takes images (wandb), else as a PNG in the logger's folder (csv)."""
    if logger is None:
        return
    if hasattr(logger, "log_image"):
        # An 8-bit PIL image: wandb would cast a float tensor in [0, 1] straight to uint8 (all black).
        logger.log_image(key=key, images=[image if isinstance(image, Image.Image) else to_pil(image)], step=step)
        return
    log_dir = getattr(logger, "log_dir", None)
    if log_dir:
        folder = Path(log_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        save_png(image, folder / f"{key}_{step:06d}.png")


def log_metrics(logger: Any, values: dict[str, float], step: int) -> None:
    if logger is not None and values:
        logger.log_metrics(values, step=step)


def finish_logger(logger: Any, status: str) -> None:
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
