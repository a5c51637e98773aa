"""How every input image is resized (torch-free, so the onnxruntime deployment shares it)."""

from __future__ import annotations

from PIL import Image

# Pillow's antialiased bilinear filter, the one the quality metrics (stylefw.metrics.resize) and pastiche
# resize with. Lanczos' sharper, ringing edges raised the Gram targets (relu4_1's term by 40 % on one
# painting at 256 px), and the style distance at 300 steps was 1.5x that of bilinear inputs (0.197 against
# 0.133 median over 3 pairs; README, "Time to quality").
INPUT_RESAMPLING = Image.Resampling.BILINEAR


def fit_longest_side(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is `longest` pixels, keeping the aspect ratio."""
    width, height = size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longest_side(image: Image.Image, longest: int) -> Image.Image:
    """`image` resized with :data:`INPUT_RESAMPLING` so that its longer side is `longest` pixels."""
    return image.resize(fit_longest_side(image.size, longest), INPUT_RESAMPLING)
