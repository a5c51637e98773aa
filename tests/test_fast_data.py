"""The image-folder data module of method=fast: recursive, any Pillow format, bad files skipped, resumable order,
the same crops whether the photos are decoded for each sample or held decoded on the device."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylefw.errors import StylefwError, StylefwWarning
from stylefw.image.io import find_images
from stylefw.plugins.data.image_folder import ImageFolderData, PhotoCrops, StepSampler


def write_photo(path: Path, size: tuple[int, int] = (48, 40), mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode == "RGBA":
        image.putalpha(128)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Readable photos in several formats and modes, nested; plus files that must be skipped or ignored."""
    root = tmp_path / "photos"
    write_photo(root / "a.jpg", seed=1)
    write_photo(root / "b.png", mode="L", seed=2)
    write_photo(root / "nested" / "deeper" / "c.webp", seed=3)
    write_photo(root / "nested" / "d.png", mode="RGBA", seed=4)
    write_photo(root / "nested" / "e.bmp", mode="P", seed=5)
    write_photo(root / "f.tiff", size=(20, 12), seed=6)  # smaller than the crop: enlarged
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    (root / "notes.txt").write_text("ignored: not an image extension")
    write_photo(root / ".hidden" / "g.jpg", seed=7)  # hidden folders are left out
    return root


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_finds_every_image_recursively(photo_folder: Path) -> None:
    found = find_images(photo_folder)
    assert found == sorted(found)
    assert {path.name for path in found} == {"a.jpg", "b.png", "c.webp", "d.png", "e.bmp", "f.tiff", "empty.jpg",
                                             "text.png"}


def test_unreadable_files_are_skipped_with_a_warning_and_counted(photo_folder: Path) -> None:
    for resident in (True, False):
        data = ImageFolderData(str(photo_folder), crop=16, batch_size=2, val_count=2, resident=resident)
        with pytest.warns(StylefwWarning, match="skipped: .*(empty|not an image)") as caught:
            data.setup()
        assert len(caught) == 2
        assert data.summary() == {"train_photos": 4, "val_photos": 2, "skipped": 2}
        images = data.images(next(iter(data.train_dataloader())))
        assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
        assert 0 <= float(images.min()) and float(images.max()) <= 1


def test_a_photo_that_fails_to_decode_is_replaced_and_counted(photo_folder: Path, tmp_path: Path) -> None:
    bad = write_photo(photo_folder / "z_truncated.jpg", size=(400, 300), seed=9)
    truncate(bad)  # the header is fine, so only decoding finds out
    data = ImageFolderData(str(photo_folder), crop=16, batch_size=1, val_count=0, resident=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.setup()
    assert bad in data.train_paths
    crops = PhotoCrops(data.train_paths, 16, None, len(data.train_paths), 0, None)
    with pytest.warns(StylefwWarning, match="z_truncated.jpg"):
        samples = [crops[i] for i in range(len(data.train_paths))]  # one epoch visits every photo
    assert all(sample["image"].shape == (3, 16, 16) for sample in samples)
    assert crops.bad == {data.train_paths.index(bad)}


def test_samples_depend_on_their_number_alone(photo_folder: Path) -> None:
    paths = [photo_folder / "a.jpg", photo_folder / "b.png", photo_folder / "nested" / "d.png"]
    first = PhotoCrops(paths, 16, 32, 4, seed=3, max_pixels=None)
    second = PhotoCrops(paths, 16, 32, 4, seed=3, max_pixels=None)
    for sample in (0, 5, 9, 2):
        assert torch.equal(first[sample]["image"], second[sample]["image"])
    orders = {tuple(first.order(epoch)) for epoch in range(4)}
    assert len(orders) > 1  # each epoch has its own order
    assert sorted(first.order(0)) == list(range(len(paths)))


def test_sampler_resumes_mid_epoch_and_shards_ranks() -> None:
    step = {"now": 0}
    whole = list(StepSampler(5, 2, 0, 1, lambda: step["now"]))
    assert whole == list(range(10))
    step["now"] = 3  # resumed at step 3 of an epoch of 5: the rest of that epoch
    assert list(StepSampler(5, 2, 0, 1, lambda: step["now"])) == whole[6:]
    step["now"] = 7  # second epoch
    assert list(StepSampler(5, 2, 0, 1, lambda: step["now"])) == [14, 15, 16, 17, 18, 19]
    step["now"] = 0
    ranks = [list(StepSampler(2, 2, rank, 2, lambda: step["now"])) for rank in (0, 1)]
    assert ranks == [[0, 1, 4, 5], [2, 3, 6, 7]]  # disjoint, and together every sample of each step


def test_validation_set_is_fixed_centre_crops(photo_folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = ImageFolderData(str(photo_folder), crop=16, val_count=2, seed=0)
        one.setup()
        other = ImageFolderData(str(photo_folder), crop=16, val_count=2, seed=5)
        other.setup()
    assert torch.equal(one.val_images, other.val_images)  # the run's seed changes crops, not the held-out photos
    assert one.val_images.shape == (2, 3, 16, 16)
    assert len(one.train_paths) == 6 - 2  # readable photos minus the held-out ones


@pytest.mark.parametrize(("root", "message"), [
    (None, "method=fast trains on a folder of photos: add data.root=/path/to/photos"),
    ("/no/such/folder", "data.root=/no/such/folder does not exist"),
])
def test_missing_root_says_how_to_give_one(root: str | None, message: str) -> None:
    with pytest.raises(StylefwError, match=message):
        ImageFolderData(root)


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no photos here")
    with pytest.raises(StylefwError, match="holds no image Pillow can read"):
        ImageFolderData(str(tmp_path)).setup()


def test_a_photo_that_fails_to_decode_is_left_out_of_the_resident_set(photo_folder: Path) -> None:
    bad = write_photo(photo_folder / "z_truncated.jpg", size=(400, 300), seed=9)
    truncate(bad)
    data = ImageFolderData(str(photo_folder), crop=16, batch_size=1, val_count=0)
    with pytest.warns(StylefwWarning) as caught:
        data.setup()
    assert any("z_truncated.jpg" in str(warning.message) for warning in caught)
    assert bad not in data.train_paths and data.summary() == {"train_photos": 6, "val_photos": 0, "skipped": 3}


@pytest.mark.parametrize("flip", [False, True])
def test_resident_photos_give_the_file_loaders_crops(photo_folder: Path, flip: bool) -> None:
    """Decoded once and cut on the device, or decoded for each sample: the same crops for a seed, step by step,
    over more than one epoch (its own photo order)."""
    sets = []
    for resident in (True, False):
        data = ImageFolderData(str(photo_folder), crop=16, longest_side=32, batch_size=2, val_count=1, seed=4,
                               resident=resident, flip=flip)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data.setup()
        sets.append(data)
    batches = [[data.images(batch) for batch in [*data.train_dataloader(), *data.train_dataloader()]]
               for data in sets]
    resident_batches, file_batches = batches
    assert len(resident_batches) == len(file_batches) == 4
    for resident_images, file_images in zip(resident_batches, file_batches):
        assert torch.equal(resident_images, file_images)
    if flip:  # some crops are mirrored: the same window unflipped differs
        unflipped = ImageFolderData(str(photo_folder), crop=16, longest_side=32, batch_size=2, val_count=1, seed=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unflipped.setup()
        plain = [unflipped.images(batch) for batch in unflipped.train_dataloader()]
        assert any(not torch.equal(a, b) for a, b in zip(plain, resident_batches))


def test_resident_photos_that_would_not_fit_are_refused(photo_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.plugins.data.image_folder as image_folder

    monkeypatch.setattr(image_folder, "available_memory_bytes", lambda device: 1000)
    data = ImageFolderData(str(photo_folder), crop=16, val_count=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(StylefwError, match="decoded training photos take .* add data.resident=false"):
            data.setup()
