"""Trained nets on disk: finding, reading and rebuilding a method=fast checkpoint, and writing one safely.

A checkpoint is Lightning's (the net's weights, the optimizer's state, the step) with one more entry,
``stylefw``: the net's config (with its ``_target_``) and what it was trained on. Everything is read
back with ``weights_only=True``, so no pickled code ever runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from stylefw.errors import StylefwError
from stylefw.runtime.files import atomic_write
from stylefw.runtime.lightning import interrupts_deferred

CHECKPOINT_KEY = "stylefw"  # the checkpoint entry that says how to rebuild the net and what it was trained on
CHECKPOINT_FILE = Path("checkpoints") / "last.ckpt"  # inside a training run's folder


def resolve_checkpoint(spec: str | None, mode: str, key: str = "checkpoint") -> Path:
    """The checkpoint file named by `key` (``checkpoint=``): a .ckpt file, or a training run's folder."""
    if spec is None or not str(spec).strip():
        raise StylefwError(f"mode={mode} needs a trained net: add {key}=<training run folder> or "
                           f"{key}=<that folder>/{CHECKPOINT_FILE.as_posix()}")
    path = Path(os.path.expanduser(str(spec)))
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise StylefwError(f"{key}={spec}: {path} not found: give a .ckpt file written by a training run "
                           f"(method=fast mode=train), or that run's folder")
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A method=fast checkpoint's contents, loaded with ``weights_only=True`` (tensors and plain data only)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        raise StylefwError(f"checkpoint={path} could not be read ({' '.join(str(error).split())[:200]}): "
                           "give a .ckpt file written by method=fast, complete (not still being written)") from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise StylefwError(f"checkpoint={path} was not written by method=fast training: give one of its "
                           f"{CHECKPOINT_FILE.as_posix()} files")
    return checkpoint


def net_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {key.removeprefix("net."): value for key, value in checkpoint["state_dict"].items()
            if key.startswith("net.")}


def load_net(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained net (in eval mode) and the checkpoint's ``stylefw`` entry (net config, style, steps)."""
    checkpoint = read_checkpoint(path)
    info = dict(checkpoint[CHECKPOINT_KEY])
    try:
        net = instantiate(info["net"])
        net.load_state_dict(net_state(checkpoint))
    except StylefwError:
        raise
    except Exception as error:
        raise StylefwError(f"checkpoint={path}: its net could not be rebuilt ({' '.join(str(error).split())[:200]}): "
                           "was it written by another stylefw version? retrain, or use that version") from None
    info["steps"] = int(checkpoint.get("global_step", 0))
    return net.eval(), info


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing to a temporary file renamed into place: a kill mid-save leaves
    the previous checkpoint intact, never half of one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with interrupts_deferred(), atomic_write(path, "wb") as stream:
            torch.save(checkpoint, stream)


class InterruptCheckpoint(pl.Callback):
    """Saves a checkpoint when training is interrupted (Ctrl-C, SIGTERM), so that resuming loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)
