"""Image I/O: load any Pillow-readable file (or a bundled image by name) as a 1x3xHxW tensor in [0, 1]."""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from stylefw.errors import StylefwError

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


def open_rgb(path: Path, role: str) -> Image.Image:
    """Open an image as RGB, with EXIF rotation applied and transparency composited onto white."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise StylefwError(
            f"{role} image '{path}' could not be read ({error}): give a JPEG, PNG or other image Pillow reads"
        ) from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def fit_longest_side(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is `longest` pixels, keeping the aspect ratio."""
    width, height = size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """A 1x3xHxW (or 3xHxW) tensor in [0, 1] as an 8-bit RGB image; values outside [0, 1] are clipped."""
    pixels = image.detach().float().cpu().reshape(-1, *image.shape[-3:])[0]
    array = (pixels.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(array)


def load_image(spec: str, longest_side: int | None, role: str = "content") -> torch.Tensor:
    """Load `spec` (a path or a bundled name) resized so its longest side is `longest_side` pixels."""
    image = open_rgb(resolve_image_path(spec, role), role)
    if longest_side is not None and max(image.size) != longest_side:
        image = image.resize(fit_longest_side(image.size, longest_side), Image.Resampling.LANCZOS)
    return to_tensor(image)


def save_png(image: torch.Tensor, path: Path, text: dict[str, str] | None = None) -> Path:
    """Write `image` as PNG with optional text chunks; written to a temporary name, then renamed into place."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value, zip=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            to_pil(image).save(stream, format="PNG", pnginfo=info)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
