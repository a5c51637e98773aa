"""Image loading and saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from stylefw.errors import StylefwError
from stylefw.images import bundled_images, load_image, save_png


def test_bundled_images_load_by_name() -> None:
    assert {"astronaut", "church_at_auvers"} <= set(bundled_images())
    image = load_image("church_at_auvers", 100, role="style")
    assert image.shape == (1, 3, 100, 79) and 0 <= image.min() and image.max() <= 1
    assert image.std() > 0.1  # a real painting, not a flat placeholder


def test_longest_side_is_resized_keeping_aspect(tiny_image: Path) -> None:
    assert load_image(str(tiny_image), 20).shape == (1, 3, 15, 20)
    assert load_image(str(tiny_image), None).shape == (1, 3, 30, 40)


def test_missing_file_lists_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match=r"content image '.*nope.jpg' not found.*astronaut"):
        load_image(str(tmp_path / "nope.jpg"), 32)


def test_directory_and_non_image_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match="is a directory"):
        load_image(str(tmp_path), 32)
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    with pytest.raises(StylefwError, match="could not be read"):
        load_image(str(fake), 32, role="style")


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)
    assert torch.allclose(load_image(str(path), None), torch.ones(1, 3, 4, 4))


def test_save_png_round_trips_with_text_chunk(tmp_path: Path) -> None:
    image = torch.rand(1, 3, 8, 6)
    path = save_png(image, tmp_path / "out.png", text={"stylefw:config": "size: 8"})
    with Image.open(path) as saved:
        assert saved.size == (6, 8) and saved.text["stylefw:config"] == "size: 8"
    assert torch.allclose(load_image(str(path), None), image, atol=1 / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind
