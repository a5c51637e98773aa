"""Lightning plumbing shared by methods: a quiet Trainer, interrupt-safe fitting, a step progress bar."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from tqdm.auto import tqdm


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
