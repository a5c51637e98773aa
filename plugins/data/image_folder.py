"""Training photos for method=fast: every image under a folder, random crops, a fixed validation set.

The folder is searched recursively for every file Pillow can read (by its extension, then by its
header); each photo is converted to 8-bit sRGB like every other stylefw input, resized so its
longest side is the run's output size (so the net learns strokes at the scale it will paint
them), and cropped. Files that cannot be read are skipped with a one-line warning and counted,
never a crash. By default the photos are decoded once and held on the training device
(:mod:`.resident`); ``resident=false`` decodes each sample's photo when it is needed, for folders
too large to hold. Either way a step sees the same crops (:mod:`.photos`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from stylefw.errors import StylefwError, check_whole_number, warn
from stylefw.image.io import find_images, to_tensor
from stylefw.runtime.resources import available_memory_bytes

from .photos import StepSampler, crop_at, crop_window, decode_photo, epoch_order, readable_images
from .resident import ResidentCrops, decode_all

VALIDATION_SPLIT_SEED = 0  # the validation photos do not change with the run's seed


def load_photo(path: Path, longest_side: int | None, crop: int, max_pixels: int | None) -> torch.Tensor:
    """A photo as 3×H×W float in [0, 1], decoded as :func:`~.photos.decode_photo` decodes it."""
    return to_tensor(decode_photo(path, longest_side, crop, max_pixels))[0]


class PhotoCrops(Dataset):
    """Sample number j → a random crop of one photo, both chosen by (seed, j) alone.

    Samples are numbered over the whole training run: j // `samples_per_epoch` is the epoch,
    whose photo order is a permutation seeded by (seed, epoch). A photo that fails to decode is
    skipped for the next one in that order, with a warning, and remembered in :attr:`bad`.
    """

    def __init__(self, paths: list[Path], crop: int, longest_side: int | None, samples_per_epoch: int, seed: int,
                 max_pixels: int | None, flip: bool = False) -> None:
        self.paths, self.crop, self.longest_side = paths, crop, longest_side
        self.samples_per_epoch, self.seed, self.max_pixels, self.flip = samples_per_epoch, seed, max_pixels, flip
        self.bad: set[int] = set()
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.samples_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.seed, epoch, len(self.paths)))
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
            window = crop_window(self.seed, sample, *photo.shape[-2:], self.crop, self.flip)
            return {"image": crop_at(photo, self.crop, *window).contiguous(), "photo": index}
        raise StylefwError(f"none of the {len(self.paths)} training photos could be decoded: "
                           "point data.root at a folder of readable images")


class ResumableLoader(DataLoader):
    """A DataLoader that tells Lightning it resumes mid-epoch (its position comes from the restored step)."""

    def state_dict(self) -> dict[str, str]:
        return {"position": "from the trainer's global step"}

    def load_state_dict(self, state: dict[str, str]) -> None:
        """Nothing to restore: :class:`StepSampler` reads the restored step itself."""


class SampleNumbers(Dataset):
    """Sample number j → j: what the loader hands a resident set, which cuts the crops on the device."""

    def __init__(self, samples_per_epoch: int) -> None:
        self.samples_per_epoch = samples_per_epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, sample: int) -> dict[str, int]:
        return {"sample": int(sample)}


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
        resident: decode the photos once and cut every crop on the training device (3 bytes a pixel
            held there); false: decode each sample's photo when it is needed.
        flip: mirror half of the crops left to right.
    """

    def __init__(self, root: str | None = None, crop: int = 256, longest_side: int | None = None,
                 batch_size: int = 4, val_count: int = 4, workers: int = 0, seed: int = 0,
                 max_pixels: int | None = None, resident: bool = True, flip: bool = False) -> None:
        super().__init__()
        crop = check_whole_number("data.crop", crop, 16)
        batch_size = check_whole_number("data.batch_size", batch_size)
        val_count = check_whole_number("data.val_count", val_count, 0)
        workers = check_whole_number("data.workers", workers, 0)
        self.root = check_root(root)
        self.crop, self.longest_side, self.batch_size = crop, longest_side, batch_size
        self.val_count, self.workers, self.seed, self.max_pixels = val_count, workers, seed, max_pixels
        self.resident, self.flip = bool(resident), bool(flip)
        self.train_paths: list[Path] = []
        self.val_images: torch.Tensor | None = None
        self.skipped = 0
        self._train_set: PhotoCrops | ResidentCrops | None = None
        self._photos: list[torch.Tensor] = []  # the decoded training photos, when resident

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
        if self.resident:
            decoded, self._photos = decode_all(self.train_paths, self.longest_side, self.crop, self.max_pixels)
            self.skipped += len(self.train_paths) - len(decoded)
            self.train_paths = decoded
            check_room(self._photos)

    def load_validation(self, paths: list[Path]) -> torch.Tensor | None:
        crops = []
        for path in paths:
            try:
                crops.append(crop_at(load_photo(path, self.longest_side, self.crop, self.max_pixels), self.crop))
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
        samples = steps * self.batch_size * world
        if self.resident:
            self._train_set = ResidentCrops(self._photos, self.crop, samples, self.seed, self.flip)
            dataset: Dataset = SampleNumbers(samples)
        else:
            self._train_set = PhotoCrops(self.train_paths, self.crop, self.longest_side, samples, self.seed,
                                         self.max_pixels, self.flip)
            dataset = self._train_set
        sampler = StepSampler(steps, self.batch_size, rank, world,
                              lambda: trainer.global_step if trainer is not None else 0)
        return ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                               num_workers=0 if self.resident else self.workers,
                               persistent_workers=self.workers > 0 and not self.resident)

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """A resident set's batch of sample numbers becomes its plan, worked out on the host."""
        if "sample" in batch:
            return {"plan": self._train_set.plan(batch["sample"].tolist())}
        return batch

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """The plan's crops, cut on the device the batch went to."""
        if "plan" in batch:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return {"image": self._train_set.images(batch["plan"], device)}
        return batch

    def images(self, batch: dict[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
        """The image batch a loader batch stands for, outside a Trainer (tests, benchmarks)."""
        batch = self.on_before_batch_transfer(batch, 0)
        if "plan" in batch:
            return self._train_set.images(batch["plan"], device)
        return batch["image"]

    def val_dataloader(self) -> list[DataLoader]:
        if self.val_images is None:
            return []
        return [DataLoader([{"image": image} for image in self.val_images], batch_size=len(self.val_images))]

    def summary(self) -> dict[str, int]:
        """Counts for metrics.json: photos trained on, held out, skipped as unreadable."""
        bad = len(self._train_set.bad) if isinstance(self._train_set, PhotoCrops) else 0
        validation = 0 if self.val_images is None else len(self.val_images)
        return {"train_photos": len(self.train_paths) - bad, "val_photos": validation, "skipped": self.skipped + bad}


def check_room(photos: list[torch.Tensor]) -> None:
    """Refuse to hold the decoded photos when they would take more than half of the free memory."""
    held = sum(photo.numel() for photo in photos)
    free = available_memory_bytes("cpu")
    if free is not None and held > free // 2:
        raise StylefwError(f"the {len(photos)} decoded training photos take {held / 2**30:.1f} GiB, more than half "
                           f"of the {free / 2**30:.1f} GiB free: add data.resident=false (decode each when needed) "
                           "or data.longest_side=<fewer pixels>")


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
