"""Stylizing with a trained net: load its checkpoint, run it on an image of any size (tiled when large)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from stylefw.deploy.tiling import stylize_in_tiles
from stylefw.errors import StylefwError
from stylefw.images import fit_longest_side

from .fast_training import CHECKPOINT_KEY

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


def resize_longest(image: torch.Tensor, longest: int) -> torch.Tensor:
    width, height = fit_longest_side((image.shape[-1], image.shape[-2]), longest)
    return F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def stylize_image(net: torch.nn.Module, image: torch.Tensor, tile: int, overlap: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """`net` applied to a 1×3×H×W image of any size; the result is clipped to [0, 1].

    An image larger than `tile` on either side is stylized in overlapping windows of `tile`
    px, blended across `overlap` px. Every window is normalised with the instance-norm
    statistics of a copy of the whole image downscaled to fit in one window, so the windows
    agree in tone (their own statistics would each differ); nets without
    ``capture_statistics`` / ``shared_statistics`` use their own per window.
    """
    if max(image.shape[-2:]) <= tile:
        return net(image.to(device)).clamp(0, 1).cpu()
    statistics = None
    if hasattr(net, "capture_statistics"):
        statistics = net.capture_statistics(resize_longest(image, tile).to(device))

    def stylize_window(window: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(window).to(device)
        if statistics is None:
            return net(pixels).cpu().numpy()
        with net.shared_statistics(statistics):
            return net(pixels).cpu().numpy()

    tiled = stylize_in_tiles(image.numpy(), stylize_window, tile, overlap, align=getattr(net, "stride", 1))
    return torch.from_numpy(tiled).clamp(0, 1)
