"""method=fast's ``mode=stylize`` (a photo or a folder of them) and ``mode=export`` (ONNX)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from stylefw.errors import StylefwError, warn
from stylefw.images import load_image, save_png, to_tensor
from stylefw.method import RunContext, RunResult

from ..data.image_folder import find_images
from .fast_export import export_onnx, onnx_difference
from .fast_stylize import load_net, resolve_checkpoint, stylize_image

if TYPE_CHECKING:
    from .fast import FastMethod

OVERVIEW_THUMBNAIL = 256  # longest side of each photo on a folder run's overview image
OVERVIEW_COLUMNS = 4
OVERVIEW_MAX = 16
ONNX_TOLERANCE = 1e-3  # largest acceptable |onnxruntime − torch| per pixel, in [0, 1] units


def content_folder(spec: str) -> Path | None:
    path = Path(os.path.expanduser(str(spec)))
    return path if path.is_dir() else None


def style_reference(info: dict[str, Any], size: int, max_pixels: int | None) -> torch.Tensor | None:
    """The style the net was trained on, for the quality scores; None if that file is gone."""
    path = Path(info.get("style_path", ""))
    return load_image(str(path), size, role="style", max_pixels=max_pixels) if path.is_file() else None


def stylize(method: FastMethod, context: RunContext) -> RunResult:
    """Stylize `content`, a photo or every image under a folder, with the net in `checkpoint`."""
    from .fast import stylizing_device

    cfg = context.cfg
    path = resolve_checkpoint(cfg.get("checkpoint"), "stylize")
    net, info = load_net(path)
    device = stylizing_device(cfg)
    net.to(device)
    extra = {"checkpoint": str(path), "trained_steps": info["steps"]}
    folder = content_folder(cfg.content)
    if folder is not None:
        return stylize_folder(method, context, folder, net, info, device, extra)
    image = stylize_image(net, context.content, method.tile, method.overlap, device)
    style = style_reference(info, cfg.size, cfg.max_image_pixels)
    name = f"{Path(str(cfg.content)).stem}_{info['style']}.png"
    return RunResult(image=image, losses={"total": None}, steps=0, name=name, extra=extra,
                     references=(context.original_content, style) if style is not None else None,
                     scored=style is not None)


def stylize_folder(method: FastMethod, context: RunContext, folder: Path, net: torch.nn.Module,
                   info: dict[str, Any], device: torch.device, extra: dict[str, Any]) -> RunResult:
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
        written.append(save_png(stylize_image(net, image, method.tile, method.overlap, device), target))
    if not written:
        raise StylefwError(f"none of the {len(photos)} images under content={cfg.content} could be read")
    extra.update(stylized=len(written), skipped=skipped, folder=str(context.output_dir))
    return RunResult(image=overview(written), losses={"total": None}, steps=0, name=f"overview_{info['style']}.png",
                     extra=extra, scored=False, files=[f"{len(written)} stylized photos in {context.output_dir}"])


def unique_target(output_dir: Path, relative: Path, style: str) -> Path:
    """``<sub-folder>/<stem>_<style>.png``; photo.jpg and photo.png in one folder get distinct names."""
    target = output_dir / relative.parent / f"{relative.stem}_{style}.png"
    if target.exists():
        target = output_dir / relative.parent / f"{relative.stem}_{relative.suffix.lstrip('.')}_{style}.png"
    return target


def overview(paths: list[Path]) -> torch.Tensor:
    """The first stylized photos as a grid of thumbnails on white, one image."""
    thumbnails = []
    for path in paths[:OVERVIEW_MAX]:
        with Image.open(path) as image:
            image.thumbnail((OVERVIEW_THUMBNAIL, OVERVIEW_THUMBNAIL))
            thumbnails.append(image.convert("RGB"))
    columns = min(OVERVIEW_COLUMNS, len(thumbnails))
    rows = -(-len(thumbnails) // columns)
    cell = OVERVIEW_THUMBNAIL + 8
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for index, thumbnail in enumerate(thumbnails):
        row, column = divmod(index, columns)
        left, top = column * cell + (cell - thumbnail.width) // 2, row * cell + (cell - thumbnail.height) // 2
        sheet.paste(thumbnail, (left, top))
    return to_tensor(sheet)


def export(method: FastMethod, context: RunContext) -> RunResult:
    """``<style>.onnx`` in the run folder, checked on the content image against torch; the result is
    onnxruntime's stylization of the content."""
    cfg = context.cfg
    path = resolve_checkpoint(cfg.get("checkpoint"), "export")
    net, info = load_net(path)
    target = context.output_dir / f"{info['style']}.onnx"
    context.output_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(net, target, context.content)
    exported, difference = onnx_difference(target, net, context.content)
    if difference > ONNX_TOLERANCE:
        raise StylefwError(f"the exported {target} differs from torch by up to {difference:.2g} (tolerance "
                           f"{ONNX_TOLERANCE:g}): a custom net may use an operation the exporter mistranslates")
    extra = {"checkpoint": str(path), "onnx": str(target), "onnx_max_difference": difference}
    image = torch.from_numpy(exported).clamp(0, 1)
    style = style_reference(info, cfg.size, cfg.max_image_pixels)
    return RunResult(image=image, losses={"total": None}, steps=0, extra=extra, files=[str(target)],
                     name=f"{Path(str(cfg.content)).stem}_{info['style']}_onnx.png",
                     references=(context.original_content, style) if style is not None else None,
                     scored=style is not None)
