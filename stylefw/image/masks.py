"""Spatial control by compositing: load a region mask, soften its edge, blend two images through it.

stylefw restricts stylization to a region *after* stylizing (Gatys et al. 2017 call the region
masks "guidance channels"; we blend results instead of guiding the loss): the method stylizes the
whole image, then ``mask · stylized + (1 − mask) · rest`` keeps the content (or a second style's
result) outside the region. Why this and not Gatys' guided Gram matrices (features multiplied by
the mask downsampled to each layer, one style target per region):

- it works with every loss term (Gram, shifted Gram, histogram, third-party terms) and every
  method, including a trained network at stylize time, which cannot be given per-region targets;
- the outside of the region is exactly the content (or the second result), not an approximation;
- the cost is that the style does not adapt to the region's shape: near the boundary the strokes
  are those of the whole-image result, cut by the soft edge (`mask_feather` sets its width).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageChops, ImageOps

from stylefw.errors import StylefwError, warn
from stylefw.image.filters import gaussian_blur, resize
from stylefw.image.io import PILLOW_MAX_IMAGE_PIXELS, open_rgb, resolve_image_path, to_tensor

EMPTY_MASK_LEVEL = 0.5 / 255  # below half an 8-bit step everywhere: the mask selects nothing
ASPECT_TOLERANCE = 0.02  # relative difference of aspect ratios beyond which a stretched mask is reported


def load_mask(spec: str, shape: tuple[int, int], max_pixels: int | None = PILLOW_MAX_IMAGE_PIXELS,
              role: str = "content_mask") -> torch.Tensor:
    """The mask image `spec` as 1×1×H×W weights in [0, 1] at `shape` = (H, W): white 1, black 0, grey between.

    Any image Pillow reads works: colours count by their luma, and transparent pixels count as
    black (a region painted on a transparent layer is the region). A mask of another size is
    resized to `shape`, stretched if its aspect ratio differs (with a warning). A mask that is
    black everywhere is refused.
    """
    path = resolve_image_path(spec, role)
    rgb = open_rgb(path, role, max_pixels)  # decodes with stylefw's checks and one-line errors
    image = ImageChops.multiply(rgb.convert("L"), _alpha(path, rgb.size))
    width, height = image.size
    if abs((width / height) / (shape[1] / shape[0]) - 1) > ASPECT_TOLERANCE:
        warn(f"{role} '{spec}' is {width}x{height} px but the output is {shape[1]}x{shape[0]}: it is stretched to "
             "fit; give a mask with the content image's aspect ratio")
    mask = resize(to_tensor(image.convert("RGB"))[:, :1], shape).clamp(0, 1)
    if float(mask.max()) < EMPTY_MASK_LEVEL:
        raise StylefwError(f"{role} '{spec}' is black everywhere, so nothing would be stylized: paint the region "
                           "to stylize white (black keeps the content, grey blends)")
    return mask


def _alpha(path: Path, size: tuple[int, int]) -> Image.Image:
    """The image's opacity as an "L" image (white where opaque), oriented as `open_rgb` orients it."""
    with Image.open(path) as opened:
        opened.seek(0)
        if opened.mode not in ("RGBA", "RGBa", "LA", "La", "PA", "P") and "transparency" not in opened.info:
            return Image.new("L", size, 255)
        alpha = ImageOps.exif_transpose(opened).convert("RGBA").getchannel("A")
    return alpha if alpha.size == size else alpha.resize(size)


def feather(mask: torch.Tensor, width: float) -> torch.Tensor:
    """`mask` (B×1×H×W) with its edges softened over about `width` pixels; 0 leaves it unchanged.

    The mask is blurred with a Gaussian of σ = width / 4, so a hard edge becomes a ramp that
    goes from 2 % to 98 % over `width` pixels (±2σ). The image border is extended by repeating its
    edge, so a region touching the border stays fully selected there.
    """
    return gaussian_blur(mask, width / 4, border="replicate").clamp(0, 1) if width > 0 else mask


def composite(inside: torch.Tensor, outside: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask · inside + (1 − mask) · outside``: `inside` where the mask is white, `outside` where black.

    `outside` and `mask` are resized to `inside`'s size if they differ.
    """
    size = inside.shape[-2:]
    mask = resize(mask, size).to(inside)
    return mask * inside + (1 - mask) * resize(outside, size).to(inside)
