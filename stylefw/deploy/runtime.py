"""The onnxruntime stylizer behind ``python -m stylefw.deploy``; imports no torch, and of stylefw only the
torch-free ``stylefw.runtime.files`` (files are written to a temporary name, then renamed) and the Pillow
half of ``stylefw.image.filters`` (the input resize of ``stylefw mode=stylize``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from stylefw.image.filters import resize_longest_side
from stylefw.runtime.files import write_png


class Stylizer:
    """An exported method=fast net (``stylefw method=fast mode=export``) run by onnxruntime.

    Args:
        model: the ``.onnx`` file.
        threads: onnxruntime's intra-op threads (None: one per core).
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(self, model: str | Path, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model), options, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """1×3×H×W float32 RGB in [0, 1] → the stylized 1×3×H×W, clipped to [0, 1]."""
        output = self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]
        return np.clip(output, 0.0, 1.0)

    def stylize_image(self, image: Image.Image, longest_side: int | None = None) -> Image.Image:
        """A Pillow image stylized, optionally resized first so its longest side is `longest_side` pixels."""
        image = image.convert("RGB")
        if longest_side and max(image.size) != longest_side:
            image = resize_longest_side(image, longest_side)  # as `stylefw mode=stylize` resizes its input
        return to_image(self(to_array(image)))

    def stylize_file(self, source: str | Path, target: str | Path, longest_side: int | None = None,
                     overwrite: bool = False) -> Path:
        """Stylize the image file `source` into the PNG `target` (an existing file is kept unless `overwrite`)."""
        return write_png(self.stylize_image(load_rgb(source), longest_side), target, replace=overwrite)


def load_rgb(path: str | Path) -> Image.Image:
    """An image file as 8-bit RGB: EXIF rotation applied, transparency composited on white."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def to_array(image: Image.Image) -> np.ndarray:
    """An RGB Pillow image as a 1×3×H×W float32 array in [0, 1]."""
    return (np.asarray(image, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def to_image(pixels: np.ndarray) -> Image.Image:
    """A 1×3×H×W array in [0, 1] as an 8-bit RGB Pillow image."""
    return Image.fromarray((np.clip(pixels[0], 0, 1).transpose(1, 2, 0) * 255.0).round().astype(np.uint8))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stylefw.deploy",
                                     description="Stylize an image with an exported method=fast model (onnxruntime).")
    parser.add_argument("model", help="the .onnx file written by `stylefw method=fast mode=export`")
    parser.add_argument("input", help="the image to stylize (any format Pillow reads)")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--size", type=int, default=None, help="resize so the longest side is SIZE px first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        target = Stylizer(arguments.model, arguments.threads).stylize_file(
            arguments.input, arguments.output, arguments.size, arguments.overwrite)
    except FileExistsError:
        print(f"stylefw.deploy: error: {arguments.output} already exists: choose another name or add --overwrite",
              file=sys.stderr)
        return 2
    except Exception as error:  # onnxruntime, Pillow and OS errors: one line, not a traceback
        print(f"stylefw.deploy: error: {' '.join(str(error).split())[:300]}", file=sys.stderr)
        return 2
    print(f"Saved {target}")
    return 0
