"""Crash-safe file writes: write to a temporary name in the target's folder, flush it to disk, then rename.

A run killed mid-write (Ctrl-C, SIGKILL, a full disk) leaves either the previous file or the
new one in place, never half of one: ``os.replace`` within one folder is atomic.

Pillow and the standard library only (no torch), so the onnxruntime deployment writes its
files the same way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from PIL import Image, PngImagePlugin


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once: os.umask can only be read by setting it


def _move_without_replacing(temporary: str, path: Path) -> None:
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem (FAT, some network shares): claim the name, then replace it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.replace(temporary, path)


@contextmanager
def atomic_path(path: Path | str, *, replace: bool = True) -> Iterator[Path]:
    """A temporary file's path next to `path`, for a writer that takes a file name; once the block has written
    it, it is flushed to disk and renamed to `path`; on any error it is removed.

    With ``replace=False`` an existing `path` is never replaced: FileExistsError if the name is taken.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        # mkstemp creates 0600 files; results should get the usual permissions, like any file the user writes.
        os.chmod(temporary, 0o666 & ~_UMASK)
        yield Path(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(temporary, path)
        else:
            _move_without_replacing(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextmanager
def atomic_write(path: Path | str, mode: str = "wb", *, replace: bool = True) -> Iterator[IO]:
    """A stream to a temporary file next to `path`: renamed to `path` once complete (:func:`atomic_path`)."""
    with atomic_path(path, replace=replace) as temporary, open(temporary, mode) as stream:
        yield stream


def write_text(path: Path | str, text: str) -> None:
    with atomic_write(path, "w", replace=True) as stream:
        stream.write(text)


def write_json(path: Path | str, data: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_png(image: Image.Image, path: Path | str, text: Mapping[str, str] | None = None,
              replace: bool = True, optimize: bool = False) -> Path:
    """`image` as a PNG at `path`, with optional (compressed) text chunks, written atomically; `optimize` spends
    time on a smaller file (sheets of thumbnails)."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value, zip=True)
    with atomic_write(path, "wb", replace=replace) as stream:
        image.save(stream, format="PNG", pnginfo=info, optimize=optimize)
    return path


def is_writable_folder(folder: Path) -> bool:
    """Whether a file can be created in `folder`, found by trying: permission bits miss ACLs and special filesystems."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
