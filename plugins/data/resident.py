"""Training photos decoded once and held on the training device: each step's crops are cut there.

A training step on a GPU is too short for decoding JPEGs on the CPU beside it: with the photos
held as uint8 tensors on the device (3 bytes a pixel), a step's batch is a handful of slices,
flips and one conversion to float, and no photo crosses from the host again. The plan of a
batch (which photo, where, flipped or not) is worked out on the host from the sample numbers
before the batch goes to the device, so cutting the crops needs no device-to-host sync.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stylefw.errors import StylefwError, warn

from .photos import crop_at, crop_window, decode_photo, epoch_order

Plan = list[tuple[int, int, int, bool]]  # per sample: (photo index, top, left, flipped)


def decode_all(paths: list[Path], longest_side: int | None, crop: int,
               max_pixels: int | None) -> tuple[list[Path], list[torch.Tensor]]:
    """The photos that decode, as 3×H×W uint8 tensors on the CPU, and their paths; each failure is a warning."""
    kept, photos = [], []
    for path in paths:
        try:
            image = decode_photo(path, longest_side, crop, max_pixels)
        except StylefwError as error:
            warn(f"skipped: {error}")
            continue
        kept.append(path)
        photos.append(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous())
    return kept, photos


class ResidentCrops:
    """Sample number j → a crop of one photo, exactly as :class:`~.image_folder.PhotoCrops` chooses it (the
    same epoch order and crop window for the same seed), cut from photos held in memory.

    Args:
        photos: 3×H×W uint8 tensors; moved to the training device on first use.
        crop: side of the square crops.
        samples_per_epoch: samples numbered j // samples_per_epoch are in epoch j's order.
        seed: seed of the orders and windows.
        flip: mirror half of the crops left to right.
    """

    def __init__(self, photos: list[torch.Tensor], crop: int, samples_per_epoch: int, seed: int,
                 flip: bool = False) -> None:
        if not photos:
            raise StylefwError("none of the training photos could be decoded: point data.root at a folder of "
                               "readable images")
        self.photos, self.crop, self.samples_per_epoch, self.seed, self.flip = photos, crop, samples_per_epoch, seed, flip
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.seed, epoch, len(self.photos)))
        return self._order[1]

    def plan(self, samples: list[int]) -> Plan:
        """Which photo each sample crops, where, and whether it is mirrored: host work only."""
        plan = []
        for sample in samples:
            epoch, position = divmod(int(sample), self.samples_per_epoch)
            index = int(self.order(epoch)[position % len(self.photos)])
            height, width = self.photos[index].shape[-2:]
            plan.append((index, *crop_window(self.seed, sample, height, width, self.crop, self.flip)))
        return plan

    def images(self, plan: Plan, device: torch.device | str) -> torch.Tensor:
        """The planned crops as a B×3×crop×crop float batch in [0, 1] on `device` (photos moved there once)."""
        device = torch.device(device)
        if self.photos[0].device != device:
            self.photos = [photo.to(device) for photo in self.photos]
        crops = torch.stack([crop_at(self.photos[index], self.crop, top, left, flipped)
                             for index, top, left, flipped in plan])
        return crops.float().div_(255)
