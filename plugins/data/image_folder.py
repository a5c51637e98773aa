"""Training photos for method=fast: every image under a folder, random crops, a fixed validation set.

The folder is searched recursively for every file Pillow can read (by its extension, then by its
header); each photo is converted to 8-bit sRGB like every other stylefw input, resized so its
longest side is the run's output size (so the net learns strokes at the scale it will paint
them), and cropped. Files that cannot be read are skipped with a one-line warning and counted,
never a crash.

What a training step sees is a function of the step number alone (which photos, in which
order, where each is cropped), so a run resumed from a checkpoint continues exactly where the
killed one stopped, on one device or several.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from stylefw.errors import StylefwError, check_whole_number, warn
from stylefw.image.filters import INPUT_RESAMPLING, fit_longest_side
from stylefw.image.io import find_images, open_rgb, planned_shape, to_tensor

VALIDATION_SPLIT_SEED = 0  # the validation photos do not change with the run's seed


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


def load_photo(path: Path, longest_side: int | None, crop: int, max_pixels: int | None) -> torch.Tensor:
    """A photo as 3×H×W in [0, 1]: longest side `longest_side`, but never a side shorter than `crop`."""
    image = open_rgb(path, "training photo", max_pixels)
    width, height = fit_longest_side(image.size, longest_side) if longest_side else image.size
    grow = max(1.0, crop / min(width, height))
    size = (max(crop, round(width * grow)), max(crop, round(height * grow)))
    if size != image.size:
        image = image.resize(size, INPUT_RESAMPLING, reducing_gap=2.0)
    return to_tensor(image)[0]


def crop_at(image: torch.Tensor, crop: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A crop×crop window of a 3×H×W image: at a random place drawn from `rng`, or centred when None."""
    height, width = image.shape[-2:]
    if rng is None:
        top, left = (height - crop) // 2, (width - crop) // 2
    else:
        top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    return image[:, top:top + crop, left:left + crop]


class PhotoCrops(Dataset):
    """Sample number j → a random crop of one photo, both chosen by (seed, j) alone.

    Samples are numbered over the whole training run: j // `samples_per_epoch` is the epoch,
    whose photo order is a permutation seeded by (seed, epoch). A photo that fails to decode is
    skipped for the next one in that order, with a warning, and remembered in :attr:`bad`.
    """

    def __init__(self, paths: list[Path], crop: int, longest_side: int | None, samples_per_epoch: int, seed: int,
                 max_pixels: int | None) -> None:
        self.paths, self.crop, self.longest_side = paths, crop, longest_side
        self.samples_per_epoch, self.seed, self.max_pixels = samples_per_epoch, seed, max_pixels
        self.bad: set[int] = set()
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.samples_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.paths)))
        return self._order[1]

    def __getitem__(self, sample: int) -> dict[str, Any]:
        epoch, position = divmod(int(sample), self.samples_per_epoch)
        order = self.order(epoch)
        for attempt in range(len(self.paths)):
            index = int(order[(position + attempt) % len(self.paths)])
            if index in self.bad:
                continue
            try:
                photo = load_photo(self.paths[index], self.longest_side, self.crop, self.max_pixels)
            except StylefwError as error:
                warn(f"skipped: {error}")
                self.bad.add(index)
                continue
            rng = np.random.default_rng([self.seed, int(sample), 1])
            return {"image": crop_at(photo, self.crop, rng).contiguous(), "photo": index}
        raise StylefwError(f"none of the {len(self.paths)} training photos could be decoded: "
                           "point data.root at a folder of readable images")


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


class ResumableLoader(DataLoader):
    """A DataLoader that tells Lightning it resumes mid-epoch (its position comes from the restored step)."""

    def state_dict(self) -> dict[str, str]:
        return {"position": "from the trainer's global step"}

    def load_state_dict(self, state: dict[str, str]) -> None:
        """Nothing to restore: :class:`StepSampler` reads the restored step itself."""


class ImageFolderData(pl.LightningDataModule):
    """Photos under `root` for training a feed-forward style net.

    Args:
        root: folder searched recursively for images (any format Pillow reads).
        crop: side of the square training crops, in pixels (Johnson et al.: 256).
        longest_side: photos are first resized so their longest side is this (the method passes
            the run's ``size``, the scale the net will paint at); ``null``: as stored.
        batch_size: photos per step and process (Johnson et al.: 4).
        val_count: photos held out as the fixed validation set (centre crops), at most half of them.
        workers: DataLoader worker processes (0: load in the training process).
        seed: seed of the photo order and crop positions.
        max_pixels: larger files are skipped (decompression-bomb guard).
    """

    def __init__(self, root: str | None = None, crop: int = 256, longest_side: int | None = None,
                 batch_size: int = 4, val_count: int = 4, workers: int = 0, seed: int = 0,
                 max_pixels: int | None = None) -> None:
        super().__init__()
        crop = check_whole_number("data.crop", crop, 16)
        batch_size = check_whole_number("data.batch_size", batch_size)
        val_count = check_whole_number("data.val_count", val_count, 0)
        workers = check_whole_number("data.workers", workers, 0)
        self.root = check_root(root)
        self.crop, self.longest_side, self.batch_size = crop, longest_side, batch_size
        self.val_count, self.workers, self.seed, self.max_pixels = val_count, workers, seed, max_pixels
        self.train_paths: list[Path] = []
        self.val_images: torch.Tensor | None = None
        self.skipped = 0
        self._train_set: PhotoCrops | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_paths:
            return
        paths, self.skipped = readable_images(find_images(self.root), self.max_pixels)
        if not paths:
            raise StylefwError(f"data.root={self.root} holds no image Pillow can read ({self.skipped} skipped): "
                               "point data.root at a folder of photos (JPEG, PNG, WebP, ...; searched recursively)")
        split = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(paths))
        held_out = min(self.val_count, len(paths) // 2)
        self.train_paths = [paths[i] for i in sorted(split[held_out:])]
        self.val_images = self.load_validation([paths[i] for i in sorted(split[:held_out])])

    def load_validation(self, paths: list[Path]) -> torch.Tensor | None:
        crops = []
        for path in paths:
            try:
                crops.append(crop_at(load_photo(path, self.longest_side, self.crop, self.max_pixels), self.crop, None))
            except StylefwError as error:
                warn(f"skipped: {error}")
                self.skipped += 1
        return torch.stack(crops) if crops else None

    def steps_per_epoch(self, world_size: int) -> int:
        return max(1, len(self.train_paths) // (self.batch_size * world_size))

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        steps = self.steps_per_epoch(world)
        self._train_set = PhotoCrops(self.train_paths, self.crop, self.longest_side,
                                     steps * self.batch_size * world, self.seed, self.max_pixels)
        sampler = StepSampler(steps, self.batch_size, rank, world,
                              lambda: trainer.global_step if trainer is not None else 0)
        return ResumableLoader(self._train_set, batch_size=self.batch_size, sampler=sampler,
                               num_workers=self.workers, persistent_workers=self.workers > 0)

    def val_dataloader(self) -> list[DataLoader]:
        if self.val_images is None:
            return []
        return [DataLoader([{"image": image} for image in self.val_images], batch_size=len(self.val_images))]

    def summary(self) -> dict[str, int]:
        """Counts for metrics.json: photos trained on, held out, skipped as unreadable."""
        bad = len(self._train_set.bad) if self._train_set is not None else 0
        validation = 0 if self.val_images is None else len(self.val_images)
        return {"train_photos": len(self.train_paths) - bad, "val_photos": validation, "skipped": self.skipped + bad}


def check_root(root: str | None) -> Path:
    """The folder of training photos, or a one-line error saying how to give one."""
    if root is None or not str(root).strip():
        raise StylefwError("method=fast trains on a folder of photos: add data.root=/path/to/photos "
                           "(searched recursively; a few hundred varied photos, e.g. COCO, work well)")
    path = Path(os.path.expanduser(str(root)))
    if not path.is_dir():
        what = "is a file" if path.is_file() else "does not exist"
        raise StylefwError(f"data.root={root} {what}: give the folder that holds the training photos")
    return path
