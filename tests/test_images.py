"""Image loading and saving: every kind of file a user may hand over loads with the right colours, or fails clearly."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylefw.errors import StylefwError, StylefwWarning
from stylefw.image.io import bundled_images, load_image, planned_shape, save_png


def test_bundled_images_load_by_name() -> None:
    assert {"astronaut", "church_at_auvers"} <= set(bundled_images())
    image = load_image("church_at_auvers", 100, role="style")
    assert image.shape == (1, 3, 100, 79) and 0 <= image.min() and image.max() <= 1
    assert image.std() > 0.1  # a real painting, not a flat placeholder


def test_longest_side_is_resized_keeping_aspect(tiny_image: Path) -> None:
    assert load_image(str(tiny_image), 20).shape == (1, 3, 15, 20)
    assert load_image(str(tiny_image), None).shape == (1, 3, 30, 40)


def test_inputs_are_resized_like_the_quality_metrics_resize_them() -> None:
    # The style targets and the style distance must see the same painting: a sharper filter (Lanczos: 0.0125
    # mean difference here) shifted the Gram targets, and the style distance at 300 steps was 1.5x bilinear's.
    from stylefw.image.filters import resize_longest

    full = load_image("church_at_auvers", None, role="style")
    for side in (64, 256):
        loaded = load_image("church_at_auvers", side, role="style")
        assert (loaded - resize_longest(full, side)).abs().mean().item() < 0.003


def test_planned_shape_matches_the_loaded_shape_without_decoding(tiny_image: Path) -> None:
    assert planned_shape(str(tiny_image), 20) == tuple(load_image(str(tiny_image), 20).shape[-2:]) == (15, 20)


def test_save_png_round_trips_with_text_chunk(tmp_path: Path) -> None:
    image = torch.rand(1, 3, 8, 6)
    path = save_png(image, tmp_path / "out.png", text={"stylefw:config": "size: 8"})
    with Image.open(path) as saved:
        assert saved.size == (6, 8) and saved.text["stylefw:config"] == "size: 8"
    assert torch.allclose(load_image(str(path), None), image, atol=1 / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


# --- files that are not usable images: one-line errors naming the file, the problem and the fix ---------------------

def test_missing_file_lists_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match=r"content image '.*nope.jpg' not found.*astronaut"):
        load_image(str(tmp_path / "nope.jpg"), 32)


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match=r"content image '.*' is a directory: give the path of one image file"):
        load_image(str(tmp_path), 32)


def test_empty_setting_is_a_clear_error() -> None:
    with pytest.raises(StylefwError, match="style image is not set"):
        load_image("", 32, role="style")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"'.*empty.jpg' is empty \(0 bytes\).*give a complete image file"),
        (b"hello, I am text", r"'.*empty.jpg' is not an image Pillow can read.*give an image file"),
    ],
    ids=["zero_bytes", "text_named_jpg"],
)
def test_files_that_are_not_images(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(content)
    with pytest.raises(StylefwError, match=message) as error:
        load_image(str(path), 32, role="style")
    assert str(error.value).startswith("style image") and "\n" not in str(error.value)


def test_truncated_jpeg_says_download_again(tmp_path: Path, tiny_image: Path) -> None:
    whole = io.BytesIO()
    Image.open(tiny_image).save(whole, format="JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(StylefwError, match=r"'.*cut.jpg' is truncated or damaged .*download or export it again"):
        load_image(str(path), 32)


def test_image_over_max_pixels_is_refused_before_decoding(tiny_image: Path) -> None:
    with pytest.raises(StylefwError, match=r"is 40x30 = 1200 pixels, more than max_image_pixels=1000 .*"
                                           r"add max_image_pixels=1200 \(or max_image_pixels=null for no limit\)"):
        load_image(str(tiny_image), 32, max_pixels=1000)
    assert load_image(str(tiny_image), 32, max_pixels=1200).shape == (1, 3, 24, 32)


def test_decompression_bomb_is_refused_by_default(tmp_path: Path) -> None:
    """100 Mpx of one colour compresses to a few kB: refused at Pillow's default limit, without decoding."""
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(StylefwError, match="100000000 pixels, more than max_image_pixels=89478485"):
        load_image(str(path), 32)


def test_max_pixels_none_lifts_pillows_own_limit(tiny_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse a 1200-pixel image
    assert load_image(str(tiny_image), None, max_pixels=None).shape == (1, 3, 30, 40)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored


# --- unusual but valid images load with the right colours ------------------------------------------------------------

def saved(image: Image.Image, path: Path, **options) -> str:
    image.save(path, **options)
    return str(path)


def test_cmyk_jpeg_has_the_right_colour(tmp_path: Path) -> None:
    path = saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "red.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    assert torch.allclose(load_image(path, None)[0, :, 4, 4], torch.tensor([1.0, 0.0, 0.0]), atol=3 / 255)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    clear = saved(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), tmp_path / "clear.png")
    assert torch.allclose(load_image(clear, None), torch.ones(1, 3, 4, 4))
    half = saved(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), tmp_path / "half.png")
    assert torch.allclose(load_image(half, None)[0, :, 0, 0], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=1 / 255)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (4, 4), 100), (100, 100, 100)),
        (Image.new("LA", (4, 4), (100, 255)), (100, 100, 100)),
        (Image.new("LA", (4, 4), (100, 0)), (255, 255, 255)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("1", (4, 4), 0), (0, 0, 0)),
        (Image.new("RGB", (4, 4), (10, 200, 30)).quantize(4), (10, 200, 30)),
    ],
    ids=["L", "LA_opaque", "LA_clear", "1bit_white", "1bit_black", "P"],
)
def test_other_modes_have_the_right_colours(tmp_path: Path, image: Image.Image, expected: tuple[int, ...]) -> None:
    path = saved(image, tmp_path / "mode.png")
    assert Image.open(path).mode == image.mode
    assert torch.allclose(load_image(path, None)[0, :, 1, 1], torch.tensor(expected) / 255, atol=1 / 255)


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((0, 0), 1)
    path = saved(image, tmp_path / "p.png", transparency=0)
    loaded = load_image(path, None)[0]
    assert torch.allclose(loaded[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(loaded[:, 1, 1], torch.ones(3))


def test_16_bit_grayscale_keeps_its_range(tmp_path: Path) -> None:
    """Pillow's own convert("RGB") clips 16-bit values to white; mid-gray must stay mid-gray."""
    values = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    path = saved(Image.fromarray(values), tmp_path / "gray16.png")
    assert Image.open(path).mode.startswith("I;16")
    loaded = load_image(path, None)[0, 0]
    assert torch.allclose(loaded, torch.tensor([[0.0, 64 / 255], [128 / 255, 1.0]]), atol=1 / 255)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[0, 1000], [32768, 65535]], dtype=np.int32), [[0, 4], [128, 255]]),  # 16-bit range in mode I
        (np.array([[0, 10], [100, 255]], dtype=np.int32), [[0, 10], [100, 255]]),  # 8-bit range in mode I
        (np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32), [[0, 64], [128, 255]]),  # float in [0, 1]
    ],
    ids=["I_16bit", "I_8bit", "F"],
)
def test_32_bit_tiff_modes(tmp_path: Path, values: np.ndarray, expected: list[list[int]]) -> None:
    path = saved(Image.fromarray(values), tmp_path / "deep.tif")
    assert Image.open(path).mode in ("I", "F")
    assert torch.allclose(load_image(path, None)[0, 1], torch.tensor(expected) / 255, atol=1 / 255)


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_rgb_png(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_16bit_rgb(np.full((2, 3, 3), (65535, 32768, 0), dtype=np.uint16)))
    assert torch.allclose(load_image(str(path), None)[0, :, 1, 2], torch.tensor([1.0, 128 / 255, 0.0]), atol=1 / 255)


def test_animated_gif_uses_the_first_frame_with_a_warning(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with pytest.warns(StylefwWarning, match=r"style image '.*anim.gif' has several frames .*using its first frame"):
        image = load_image(str(path), None, role="style")
    assert torch.allclose(image[0, :, 4, 4], torch.tensor([1.0, 0.0, 0.0]), atol=2 / 255)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    """Stored 16 wide x 8 high, red left, blue right, tagged 'rotate 90 clockwise': shown 8 x 16, red on top."""
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :8] = (255, 0, 0)
    pixels[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = saved(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_image(path, None)
    assert image.shape == (1, 3, 16, 8) and planned_shape(path, None) == (16, 8)
    assert torch.allclose(image[0, :, 2, 4], torch.tensor([1.0, 0.0, 0.0]), atol=0.1)
    assert torch.allclose(image[0, :, 13, 4], torch.tensor([0.0, 0.0, 1.0]), atol=0.1)


def test_srgb_icc_profile_keeps_the_colours_and_a_broken_profile_is_ignored(tmp_path: Path) -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    colour = (200, 120, 40)
    for name, profile in (("tagged.png", srgb), ("broken.png", b"not a profile")):
        path = saved(Image.new("RGB", (4, 4), colour), tmp_path / name, icc_profile=profile)
        assert torch.allclose(load_image(path, None)[0, :, 1, 1], torch.tensor(colour) / 255, atol=2 / 255), name


def test_one_pixel_image_is_enlarged_with_a_warning(tmp_path: Path) -> None:
    path = saved(Image.new("RGB", (1, 1), (0, 128, 255)), tmp_path / "dot.png")
    with pytest.warns(StylefwWarning, match=r"is only 1x1 px and is enlarged 32.0x to size=32"):
        image = load_image(path, 32, role="style")
    assert image.shape == (1, 3, 32, 32) and torch.allclose(image, image[..., :1, :1].expand_as(image), atol=1 / 255)


def test_mild_upscaling_is_silent(tiny_image: Path, recwarn: pytest.WarningsRecorder) -> None:
    load_image(str(tiny_image), 64)  # 1.6x
    assert not [w for w in recwarn if issubclass(w.category, StylefwWarning)]


def test_non_ascii_and_space_paths(tmp_path: Path, tiny_image: Path) -> None:
    folder = tmp_path / "dossier été"
    folder.mkdir()
    path = folder / "mon image.png"
    path.write_bytes(tiny_image.read_bytes())
    assert load_image(str(path), 20).shape == (1, 3, 15, 20)
    out = save_png(torch.rand(1, 3, 4, 4), folder / "résultat 1.png")
    assert out.is_file()
