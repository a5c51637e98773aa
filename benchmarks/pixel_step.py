"""Time per `method=pixel` step as a ratio of the hardware floor.

Floor: one VGG19 forward to relu5_1 plus the backward to the input only (weights frozen), at
the run's size. The step is the product's real path: the pixel method's LightningModule driven
by Lightning, default losses (content + gram + tv) and L-BFGS. After every step a callback
runs one floor pass, untimed by the step, so each step has a floor measured moments later;
the ratio is the median of step/floor, which cancels slow drift in the machine's load.
Timing starts once L-BFGS's history is full (warm-up steps = history size), as in most of a
real run's steps: each step walks the whole history (two passes over 2 x history_size
image-sized vectors).

Variants of the Gram head run side by side in one process:
  autograd  gram_loss differentiated by autograd (3 matrix products per layer)
  fused     the GramMSE autograd function, one product per direction (stylefw's default)
each with every L-BFGS history size of --history-sizes (optimizer.history_size) and every
backbone layout of --layouts (backbone.channels_last: channels_last, stylefw's default, or nchw).
--allocator kept (default) runs as every stylefw run does, its freed memory kept mapped
(stylefw/runtime/resources.py); --allocator glibc leaves the C library's own behaviour. One per process:
once set, glibc's adaptive thresholds cannot be restored. The floor runs on the same backbone
and allocator as the step, so it follows both.

    python benchmarks/pixel_step.py --sizes 256 512 --steps 20
    python benchmarks/pixel_step.py --variants fused --history-sizes 100 20 50
    python benchmarks/pixel_step.py --variants fused --layouts channels_last nchw --allocator glibc
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compose_config, median, table  # noqa: E402

from stylefw.runtime.lightning import configure_quiet  # noqa: E402
from stylefw.runtime.resources import freed_memory_kept  # noqa: E402
from stylefw.method import RunContext  # noqa: E402
from stylefw.errors import build  # noqa: E402

VARIANTS = ("autograd", "fused")
LAYOUTS = {"channels_last": "backbone.channels_last=true", "nchw": "backbone.channels_last=false"}
DEFAULT_HISTORY = compose_config().optimizer.history_size


def floor_pass(backbone: torch.nn.Module, image: torch.Tensor) -> None:
    probe = image.detach().clone().requires_grad_()
    backbone(probe, ("relu5_1",))["relu5_1"].sum().backward()


class PairedTimer(pl.Callback):
    """Times each training step, then one floor pass (outside the step's time)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.steps, self.floors = warmup, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        elapsed = time.perf_counter() - self.started
        floor_started = time.perf_counter()
        floor_pass(module.objective.backbone, module.pixels())
        floor = time.perf_counter() - floor_started
        if batch_idx >= self.warmup:
            self.steps.append(elapsed)
            self.floors.append(floor)


@contextmanager
def gram_head(variant: str):
    from stylefw.plugins.losses import gram

    original = gram.GramLoss.distance
    if variant == "autograd":
        gram.GramLoss.distance = lambda self, feature, target, layer: gram.gram_loss(feature, target)
    try:
        yield
    finally:
        gram.GramLoss.distance = original


def measure(size: int, steps: int, warmup: int, variant: str, history: int, layout: str,
            allocator: str) -> tuple[float, float, float]:
    """(median step s, median floor s, median step/floor) for one variant at one size."""
    warmup = max(warmup, history)
    cfg = compose_config(f"size={size}", f"method.steps={steps + warmup}", f"optimizer.history_size={history}",
                         LAYOUTS[layout], "logger=none", "metrics=none")
    context = RunContext(cfg, Path("/tmp/stylefw-bench"))
    method = build(cfg.method, "method")
    timer = PairedTimer(warmup)
    make_trainer = context.make_trainer
    context.make_trainer = lambda **kwargs: make_trainer(**{**kwargs, "callbacks": [*kwargs["callbacks"], timer]})
    with gram_head(variant), freed_memory_kept() if allocator == "kept" else nullcontext():
        method.run(context)
    ratios = [step / floor for step, floor in zip(timer.steps, timer.floors)]
    return median(timer.steps), median(timer.floors), median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="each variant runs this often, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--history-sizes", type=int, nargs="+", default=[DEFAULT_HISTORY],
                        help="L-BFGS history sizes to time (default: the config's)")
    parser.add_argument("--layouts", nargs="+", default=["channels_last"], choices=list(LAYOUTS),
                        help="backbone memory layouts to time (default: channels_last, the config's)")
    parser.add_argument("--allocator", default="kept", choices=["kept", "glibc"],
                        help="kept: freed memory stays mapped, as in stylefw runs (default); glibc: the C library's own")
    args = parser.parse_args()
    configure_quiet(verbose=False)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        results = {(variant, history, layout, args.allocator): [] for variant in args.variants
                   for history in args.history_sizes for layout in args.layouts}
        for _ in range(args.rounds):
            for key, runs in results.items():
                runs.append(measure(size, args.steps, args.warmup, *key))
                print(f"{size}² {' '.join(map(str, key))}: step/floor {runs[-1][2]:.3f}",
                      flush=True)  # progress: 512² with a full history of 100 takes minutes per variant
        for (variant, history, layout, allocator), runs in results.items():
            step, floor, ratio = (median([run[i] for run in runs]) for i in range(3))
            rows.append((f"{size}²", variant, history, layout, allocator, f"{step:.3f}", f"{floor:.3f}",
                         f"**{ratio:.3f}**"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} timed steps (after a full L-BFGS history) x {args.rounds} rounds per variant")
    print(table(("size", "Gram head", "L-BFGS history", "layout", "allocator", "s/step", "floor s", "step ÷ floor"),
                rows))


if __name__ == "__main__":
    main()
