"""Reading training photos, and what each training step sees of them.

What a step sees is a function of the step number alone (which photos, in which order, where
each is cropped, whether it is flipped), so a run resumed from a checkpoint continues exactly
where the killed one stopped, on one device or several, and the two ways of serving the photos
(decoded for each sample, or decoded once and held on the device) serve the same crops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Sampler

from stylefw.errors import StylefwError, warn
from stylefw.image.filters import INPUT_RESAMPLING, fit_longest_side
from stylefw.image.io import open_rgb, planned_shape


def readable_images(paths: list[Path], max_pixels: int | None) -> tuple[list[Path], int]:
    """The files whose header Pillow reads (no full decode), and how many were skipped, each with a warning."""
    readable, skipped = [], 0
    for path in paths:
        try:
            planned_shape(str(path), None, role="training photo", max_pixels=max_pixels)
        except StylefwError as error:
            warn(f"skipped: {error}")
            skipped += 1
            continue
        readable.append(path)
    return readable, skipped


def decode_photo(path: Path, longest_side: int | None, crop: int, max_pixels: int | None) -> Image.Image:
    """A photo as 8-bit RGB: longest side `longest_side`, but never a side shorter than `crop`."""
    image = open_rgb(path, "training photo", max_pixels)
    width, height = fit_longest_side(image.size, longest_side) if longest_side else image.size
    grow = max(1.0, crop / min(width, height))
    size = (max(crop, round(width * grow)), max(crop, round(height * grow)))
    return image.resize(size, INPUT_RESAMPLING, reducing_gap=2.0) if size != image.size else image


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order in which an epoch visits `count` photos: a permutation seeded by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def crop_window(seed: int, sample: int, height: int, width: int, crop: int, flip: bool) -> tuple[int, int, bool]:
    """(top, left, flipped) of sample number `sample`'s crop of a `height` × `width` photo, drawn from (seed,
    sample) alone; flipped left to right with probability ½ when `flip`."""
    rng = np.random.default_rng([seed, int(sample), 1])
    top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    return top, left, bool(flip and rng.random() < 0.5)


def crop_at(image: torch.Tensor, crop: int, top: int | None = None, left: int | None = None,
            flipped: bool = False) -> torch.Tensor:
    """A crop×crop window of a 3×H×W image at (top, left), centred when they are None; mirrored when `flipped`."""
    height, width = image.shape[-2:]
    top = (height - crop) // 2 if top is None else top
    left = (width - crop) // 2 if left is None else left
    window = image[:, top:top + crop, left:left + crop]
    return window.flip(-1) if flipped else window


class StepSampler(Sampler[int]):
    """This process's sample numbers for the steps left in the current epoch.

    Step s of the run consumes samples ``s·B·W … (s+1)·B·W − 1`` (B: batch size per process,
    W: processes), rank r the B of them at offset r·B. The first step is read from the
    trainer when an epoch's iteration starts, so after a resume the epoch continues at the
    restored step.
    """

    def __init__(self, steps_per_epoch: int, batch_size: int, rank: int, world_size: int,
                 current_step: Callable[[], int]) -> None:
        self.steps_per_epoch, self.batch_size = steps_per_epoch, batch_size
        self.rank, self.world_size = rank, world_size
        self.current_step = current_step

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        first = self.current_step()
        end_of_epoch = (first // self.steps_per_epoch + 1) * self.steps_per_epoch
        for step in range(first, end_of_epoch):
            start = (step * self.world_size + self.rank) * self.batch_size
            yield from range(start, start + self.batch_size)
