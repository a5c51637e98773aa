"""What a run leaves behind: the PNG (config in a text chunk), the resolved config, metrics.json, an optional copy."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from stylefw.atomic import atomic_write, write_text
from stylefw.errors import StylefwError
from stylefw.images import save_png

CONFIG_CHUNK = "stylefw:config"


def check_output_path(output: str | None, overwrite: bool) -> Path | None:
    """Fail before any work if `output` cannot be written or would overwrite a file without overwrite=true."""
    if not output:
        return None
    path = Path(os.path.expanduser(output)).resolve()
    if path.suffix.lower() != ".png":
        raise StylefwError(f"output={output} must end in .png: stylefw writes PNG files")
    if path.is_dir():
        raise StylefwError(f"output={output} is a directory: give a file name ending in .png")
    if path.exists() and not overwrite:
        raise StylefwError(f"output={output} already exists: choose another name or add overwrite=true")
    if not path.parent.is_dir():
        raise StylefwError(f"output={output}: folder {path.parent} does not exist: create it first")
    if not is_writable_folder(path.parent):
        raise StylefwError(f"output={output}: folder {path.parent} is not writable: choose another folder")
    return path


def is_writable_folder(folder: Path) -> bool:
    """Whether a file can be created in `folder`, found by trying: permission bits miss ACLs and special filesystems."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def write_json(data: dict[str, Any], path: Path) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def copy_result(source: Path, target: Path, overwrite: bool) -> None:
    """Copy the result to the user's path; without overwrite, an existing file there is never replaced."""
    try:
        with atomic_write(target, "wb", replace=overwrite) as stream, open(source, "rb") as data:
            shutil.copyfileobj(data, stream)
    except FileExistsError:
        raise StylefwError(
            f"output={target} appeared while the run was going: it was left untouched; the result is {source}"
        ) from None


def write_run_outputs(image: torch.Tensor, name: str, config_yaml: str, metrics: dict[str, Any],
                      output_dir: Path, output: Path | None, overwrite: bool) -> Path:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        png = save_png(image, output_dir / name, text={CONFIG_CHUNK: config_yaml})
        write_text(output_dir / "config.yaml", config_yaml)
        write_json(metrics, output_dir / "metrics.json")
    except OSError as error:
        raise StylefwError(
            f"could not write the results to {output_dir} ({error.strerror or error}): "
            "free disk space there or set hydra.run.dir to a writable folder"
        ) from None
    if output is not None:
        copy_result(png, output, overwrite)
    return png
