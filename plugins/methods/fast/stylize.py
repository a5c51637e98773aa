"""Stylizing with a trained net: one image of any size (tiled when large), ``mode=stylize`` on a photo or on
every photo in a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stylefw.deploy.tiling import stylize_in_tiles
from stylefw.errors import StylefwError, warn
from stylefw.image.filters import resize_longest
from stylefw.image.grid import grid, open_thumbnail
from stylefw.image.io import find_images, load_image, save_png, to_tensor
from stylefw.method import RunContext, RunResult

from .checkpoint import load_net, resolve_checkpoint

OVERVIEW_THUMBNAIL = 256  # longest side of each photo on a folder run's overview image
OVERVIEW_COLUMNS = 4
OVERVIEW_MAX = 16


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


def style_reference(info: dict[str, Any], size: int, max_pixels: int | None) -> torch.Tensor | None:
    """The style the net was trained on, for the quality scores; None if that file is gone."""
    path = Path(info.get("style_path", ""))
    return load_image(str(path), size, role="style", max_pixels=max_pixels) if path.is_file() else None


def stylize(context: RunContext, tile: int, overlap: int) -> RunResult:
    """Stylize `content`, a photo or every image under a folder, with the net in `checkpoint`."""
    cfg = context.cfg
    path = resolve_checkpoint(cfg.get("checkpoint"), "stylize")
    net, info = load_net(path)
    net.to(context.device)
    report = {"checkpoint": str(path), "trained_steps": info["steps"]}
    folder = Path(os.path.expanduser(str(cfg.content)))
    if folder.is_dir():
        return stylize_folder(context, folder, net, info, tile, overlap, report)
    image = stylize_image(net, context.content, tile, overlap, context.device)
    style = style_reference(info, cfg.size, cfg.max_image_pixels)
    return RunResult(image=image, losses={"total": None}, steps=0, report=report,
                     name=f"{Path(str(cfg.content)).stem}_{info['style']}.png",
                     references=(context.original_content, style) if style is not None else None,
                     scored=style is not None)


def stylize_folder(context: RunContext, folder: Path, net: torch.nn.Module, info: dict[str, Any], tile: int,
                   overlap: int, report: dict[str, Any]) -> RunResult:
    """One PNG per image under `folder` (same sub-folders) in the run folder; the result is an overview."""
    cfg = context.cfg
    if cfg.get("output"):
        raise StylefwError(f"output={cfg.output} names one file, but content={cfg.content} is a folder: drop output=; "
                           "the stylized photos are written into the run folder")
    if context.controls.preserve_color or context.controls.content_mask:
        raise StylefwError(f"preserve_color and content_mask work on one photo, but content={cfg.content} is a folder: "
                           "drop them, or stylize the photos one at a time")
    photos = find_images(folder)
    if not photos:
        raise StylefwError(f"content={cfg.content} holds no image files: give a photo or a folder of photos")
    written: list[Path] = []
    skipped = 0
    for photo in tqdm(photos, desc="stylizing", unit="photo", dynamic_ncols=True):
        try:
            image = load_image(str(photo), cfg.size, role="content", max_pixels=cfg.max_image_pixels)
        except StylefwError as error:
            warn(f"skipped: {error}")
            skipped += 1
            continue
        target = unique_target(context.output_dir, photo.relative_to(folder), info["style"])
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(save_png(stylize_image(net, image, tile, overlap, context.device), target))
    if not written:
        raise StylefwError(f"none of the {len(photos)} images under content={cfg.content} could be read")
    report.update(stylized=len(written), skipped=skipped, folder=str(context.output_dir))
    return RunResult(image=overview(written), losses={"total": None}, steps=0, name=f"overview_{info['style']}.png",
                     report=report, scored=False, files=[f"{len(written)} stylized photos in {context.output_dir}"])


def unique_target(output_dir: Path, relative: Path, style: str) -> Path:
    """``<sub-folder>/<stem>_<style>.png``; photo.jpg and photo.png in one folder get distinct names."""
    target = output_dir / relative.parent / f"{relative.stem}_{style}.png"
    if target.exists():
        target = output_dir / relative.parent / f"{relative.stem}_{relative.suffix.lstrip('.')}_{style}.png"
    return target


def overview(paths: list[Path]) -> torch.Tensor:
    """The first stylized photos as a grid of thumbnails on white, one image."""
    thumbnails: list[Image.Image] = [thumbnail for path in paths[:OVERVIEW_MAX]
                                     if (thumbnail := open_thumbnail(path, OVERVIEW_THUMBNAIL)) is not None]
    return to_tensor(grid(thumbnails, OVERVIEW_COLUMNS))
