"""Thumbnails and grids of them (the contact sheet, a folder run's overview, training previews)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylefw.image.grid import grid, open_thumbnail, thumbnail


def solid_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def test_thumbnail_fits_the_box_and_keeps_the_aspect_ratio(tmp_path: Path) -> None:
    small = open_thumbnail(solid_png(tmp_path / "a.png", (200, 10, 10)), 96)
    assert small is not None and small.size == (96, 72)
    assert open_thumbnail(tmp_path / "missing.png", 96) is None
    assert open_thumbnail(None, 96) is None
    shrunk = thumbnail(Image.new("L", (400, 100), 128), 96)
    assert shrunk.size == (96, 24) and shrunk.mode == "RGB"


def test_small_images_are_enlarged_with_visible_pixels() -> None:
    checker = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8))
    big = np.asarray(thumbnail(checker, 8))[..., 0]
    assert set(np.unique(big).tolist()) == {0, 255}  # nearest neighbour: no grey from blurring
    assert big[0, 0] == 0 and big[0, 7] == 255 and big[7, 0] == 255


def test_grid_places_images_in_rows_centred_in_equal_cells() -> None:
    red, green, blue = (Image.new("RGB", (10, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    sheet = np.asarray(grid([red, green, blue, Image.new("RGB", (4, 4), (0, 0, 0))], columns=3, gap=2))
    assert sheet.shape == (6 * 2 + 2, 10 * 3 + 2 * 2, 3)
    assert tuple(sheet[0, 0]) == (255, 0, 0) and tuple(sheet[0, 12]) == (0, 255, 0) and tuple(sheet[0, 24]) == (0, 0, 255)
    assert tuple(sheet[0, 10]) == (255, 255, 255)  # the gap
    assert tuple(sheet[8 + 2, 3 + 2]) == (0, 0, 0)  # the small image, centred in the second row's first cell
    assert tuple(sheet[8, 0]) == (255, 255, 255)
    with pytest.raises(ValueError):
        grid([], columns=2)
