"""Stylizing an image of any size in overlapping windows whose seams are blended with linear ramps.

NumPy only (it lives beside the onnxruntime deployment path, which imports no torch, so that a
deployment can tile too; today only ``stylefw method=fast mode=stylize`` does). Memory stays bounded: besides the
net's activations for one window, it holds the input, the output and one weight per pixel
(28 bytes per pixel in float32).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Stylize = Callable[[np.ndarray], np.ndarray]  # 1×3×h×w float32 in [0, 1] → 1×3×h×w


def window_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) of windows of about `tile` px covering [0, length).

    Neighbours share at least `overlap` px, every start is a multiple of `align` (a net that
    downsamples by 4 sees the same sampling grid in a window as in the whole image), and the
    last window runs to the end, so it may be up to ``align − 1`` px longer than `tile`.
    """
    if length <= tile:
        return [(0, length)]
    step = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, step))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    return [(start, start + tile) for start in starts[:-1]] + [(starts[-1], length)]


def ramp(length: int, rise_before: bool, fall_after: bool, overlap: int) -> np.ndarray:
    """Blend weights along one side of a window: 1, rising linearly over `overlap` px from a shared edge."""
    weights = np.ones(length, np.float32)
    if overlap <= 0:
        return weights
    rising = ((np.arange(min(overlap, length)) + 0.5) / overlap).astype(np.float32)
    if rise_before:
        weights[:len(rising)] = np.minimum(weights[:len(rising)], rising)
    if fall_after:
        weights[length - len(rising):] = np.minimum(weights[length - len(rising):], rising[::-1])
    return weights


def stylize_in_tiles(image: np.ndarray, stylize: Stylize, tile: int, overlap: int, align: int = 1) -> np.ndarray:
    """``stylize`` applied window by window to a 1×3×H×W image, the windows' overlaps cross-faded.

    Each output pixel is the weighted mean of the windows covering it, the weights falling
    linearly to zero towards an edge shared with a neighbour, so no seam shows a step.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap={overlap} must be at least 0 and less than tile={tile}")
    height, width = image.shape[-2:]
    rows, columns = window_spans(height, tile, overlap, align), window_spans(width, tile, overlap, align)
    output = np.zeros((1, 3, height, width), np.float32)
    total = np.zeros((height, width), np.float32)
    for row, (top, bottom) in enumerate(rows):
        vertical = ramp(bottom - top, row > 0, row < len(rows) - 1, overlap)
        for column, (left, right) in enumerate(columns):
            horizontal = ramp(right - left, column > 0, column < len(columns) - 1, overlap)
            weights = np.outer(vertical, horizontal)
            window = np.ascontiguousarray(image[..., top:bottom, left:right], dtype=np.float32)
            output[..., top:bottom, left:right] += stylize(window) * weights
            total[top:bottom, left:right] += weights
    return output / total
