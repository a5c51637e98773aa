"""Image I/O: load any Pillow-readable file (or a bundled image by name) as a 1x3xHxW tensor in [0, 1], and save
results as PNG."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from stylefw.errors import StylefwError, warn
from stylefw.image.filters import fit_longest_side, resize_longest_side
from stylefw.runtime.files import write_png

PILLOW_MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own decompression-bomb limit, read at import
_ASSETS = resources.files("stylefw") / "assets"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def bundled_images() -> dict[str, Path]:
    """Images shipped with the package, by name (file stem)."""
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in _ASSETS.iterdir()
        if entry.name.lower().endswith(_IMAGE_SUFFIXES)
    }


def resolve_image_path(spec: str, role: str) -> Path:
    """A path to an existing image file, or the path of a bundled image named `spec`."""
    if not str(spec).strip():
        raise StylefwError(f"{role} image is not set: give the path of an image file or a bundled name")
    path = Path(os.path.expanduser(str(spec)))
    if path.is_file():
        return path
    bundled = bundled_images()
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.is_dir():
        raise StylefwError(f"{role} image '{spec}' is a directory: give the path of one image file")
    names = ", ".join(sorted(bundled))
    raise StylefwError(
        f"{role} image '{spec}' not found: give the path of an image file or a bundled name ({names})"
    )


@contextmanager
def _pillow_bomb_check_disabled() -> Iterator[None]:
    """stylefw applies its own `max_image_pixels` limit; Pillow's global one would refuse images above 2x its limit."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def open_rgb(path: Path, role: str, max_pixels: int | None = PILLOW_MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image as 8-bit sRGB: EXIF rotation applied, first frame of an animation, transparency on white.

    Images with more than `max_pixels` pixels are refused before decoding (a decompression bomb
    guard; None: no limit).
    """
    try:
        with _pillow_bomb_check_disabled(), Image.open(path) as opened:
            _check_pixel_count(opened, path, role, max_pixels)
            if getattr(opened, "is_animated", False):
                warn(f"{role} image '{path}' has several frames (an animation): using its first frame")
                opened.seek(0)
            image = ImageOps.exif_transpose(opened)
            image.load()
            file_format = opened.format
    except StylefwError:
        raise
    except MemoryError:
        raise StylefwError(f"{role} image '{path}' is too large to decode in the memory available: "
                           "give a smaller image") from None
    except Exception as error:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error, ...)
        raise _unreadable(path, role, error) from None
    return _to_rgb(image, path, role, file_format)


def planned_shape(spec: str, longest_side: int | None, role: str = "content",
                  max_pixels: int | None = PILLOW_MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(height, width) that load_image would return, read from the file's header only (nothing decoded)."""
    path = resolve_image_path(spec, role)
    try:
        with _pillow_bomb_check_disabled(), Image.open(path) as opened:
            _check_pixel_count(opened, path, role, max_pixels)
            width, height = opened.size
            if opened.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except StylefwError:
        raise
    except Exception as error:  # Pillow raises many types for damaged files
        raise _unreadable(path, role, error) from None
    if longest_side is not None:
        width, height = fit_longest_side((width, height), longest_side)
    return height, width


_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _check_pixel_count(image: Image.Image, path: Path, role: str, max_pixels: int | None) -> None:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise StylefwError(
            f"{role} image '{path}' is {width}x{height} = {width * height} pixels, more than "
            f"max_image_pixels={max_pixels} (a guard against decompression bombs): if you trust the file, "
            f"add max_image_pixels={width * height} (or max_image_pixels=null for no limit)"
        )


def _unreadable(path: Path, role: str, error: Exception) -> StylefwError:
    """The message for an image file Pillow cannot decode, naming the likely cause and the fix."""
    name = f"{role} image '{path}'"
    if path.is_file() and path.stat().st_size == 0:
        return StylefwError(f"{name} is empty (0 bytes): the file was not fully written or downloaded; "
                            "give a complete image file")
    if isinstance(error, UnidentifiedImageError):
        return StylefwError(f"{name} is not an image Pillow can read (its content is not PNG, JPEG, WebP, GIF, "
                            "TIFF, BMP, ...): give an image file, or convert it to PNG")
    if isinstance(error, PermissionError):
        return StylefwError(f"{name} cannot be read ({error.strerror}): check its permissions")
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, EOFError) or "truncated" in detail.lower():
        return StylefwError(f"{name} is truncated or damaged ({detail}): download or export it again")
    return StylefwError(f"{name} could not be decoded ({detail}): open it in an image editor and save it as PNG")


def _to_rgb(image: Image.Image, path: Path, role: str, file_format: str | None) -> Image.Image:
    """Any Pillow mode as 8-bit sRGB: 16-bit and float images rescaled, ICC profiles applied, alpha on white."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = _high_depth_to_8bit(image, file_format)
    image = _to_srgb(image)
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    try:
        return image.convert("RGB")
    except ValueError:
        raise StylefwError(f"{role} image '{path}' has colour mode {image.mode}, which Pillow cannot convert to RGB: "
                           "save it as an RGB PNG or JPEG") from None


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _high_depth_to_8bit(image: Image.Image, file_format: str | None) -> Image.Image:
    """16-bit, 32-bit integer or float grayscale as 8-bit "L", scaled by its bit depth (Pillow's convert clips).

    Mode "I" holds 16-bit PNGs in older Pillow versions, hence the format test.
    """
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        full_scale = 1.0 if values.max(initial=0) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or file_format == "PNG" or values.max(initial=0) > 255:
        full_scale = 65535.0
    else:
        full_scale = 255.0
    return Image.fromarray(np.clip(values * (255.0 / full_scale), 0, 255).round().astype(np.uint8), "L")


def _to_srgb(image: Image.Image) -> Image.Image:
    """Apply an embedded ICC profile (CMYK print profiles, Display P3, Adobe RGB) to get sRGB values."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
    except Exception:  # no littlecms, or a damaged profile: Pillow's plain conversion is the fallback
        return image


def to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """A 1x3xHxW (or 3xHxW) tensor in [0, 1] as an 8-bit RGB image; values outside [0, 1] are clipped."""
    pixels = image.detach().float().cpu().reshape(-1, *image.shape[-3:])[0]
    array = (pixels.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(array)


def load_image(spec: str, longest_side: int | None, role: str = "content",
               max_pixels: int | None = PILLOW_MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Load `spec` (a path or a bundled name) resized so its longest side is `longest_side` pixels."""
    path = resolve_image_path(spec, role)
    image = open_rgb(path, role, max_pixels)
    if longest_side is not None and max(image.size) != longest_side:
        _warn_if_much_upscaled(image, path, role, longest_side)
        image = resize_longest_side(image, longest_side)
    return to_tensor(image)


MAX_QUIET_UPSCALE = 2.0  # beyond this, enlarging an image visibly blurs it


def _warn_if_much_upscaled(image: Image.Image, path: Path, role: str, longest_side: int) -> None:
    factor = longest_side / max(image.size)
    if factor > MAX_QUIET_UPSCALE:
        width, height = image.size
        warn(f"{role} image '{path}' is only {width}x{height} px and is enlarged {factor:.1f}x to size={longest_side}: "
             "expect soft, blurry detail; give a larger image or a smaller size")


def save_png(image: torch.Tensor | Image.Image, path: Path, text: Mapping[str, str] | None = None) -> Path:
    """Write `image` (a tensor in [0, 1] or a Pillow image) as PNG with optional text chunks, atomically."""
    return write_png(image if isinstance(image, Image.Image) else to_pil(image), path, text)


def image_suffixes() -> frozenset[str]:
    """File extensions of every format this Pillow build can open (.jpg, .png, .webp, .tif, .bmp, ...)."""
    Image.init()
    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN)


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, recursively, sorted; hidden files and folders are left out."""
    suffixes = image_suffixes()
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder) / name for name in files
                     if not name.startswith(".") and Path(name).suffix.lower() in suffixes)
    return sorted(found)
