"""Thumbnails and grids of them: a sweep's contact sheet, a folder run's overview, a training run's previews."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

WHITE = (255, 255, 255)


def thumbnail(image: Image.Image, box: int) -> Image.Image:
    """`image` scaled to fit a `box`-pixel square, as RGB.

    Small images (tests, previews) are enlarged with visible pixels rather than blurred; large ones are
    shrunk with Lanczos.
    """
    image = image.convert("RGB")
    scale = box / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)


def open_thumbnail(path: Path | None, box: int) -> Image.Image | None:
    """The image file at `path` as a :func:`thumbnail`, or None if there is none or it cannot be read."""
    if path is None:
        return None
    try:
        with Image.open(path) as opened:
            return thumbnail(opened, box)
    except (OSError, ValueError):
        return None


def grid(images: Sequence[Image.Image], columns: int, gap: int = 8, background: tuple[int, int, int] = WHITE
         ) -> Image.Image:
    """`images` in rows of `columns`, each centred in a cell the size of the largest, `gap` pixels apart."""
    if not images:
        raise ValueError("a grid needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    cell_width, cell_height = max(image.width for image in images), max(image.height for image in images)
    sheet = Image.new("RGB", (columns * (cell_width + gap) - gap, rows * (cell_height + gap) - gap), background)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        left = column * (cell_width + gap) + (cell_width - image.width) // 2
        top = row * (cell_height + gap) + (cell_height - image.height) // 2
        sheet.paste(image.convert("RGB"), (left, top))
    return sheet
