"""method=pixel: optimize the image itself (Gatys, Ecker & Bethge 2016) with a Lightning Trainer."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stylefw.errors import NonFiniteLossError, StylefwError, check_number, check_whole_number
from stylefw.image.color import blended_color_statistics, move_color_statistics
from stylefw.image.filters import resize, scaled_shape
from stylefw.image.io import load_image
from stylefw.method import Method, OptimizerFactory, RunContext, RunResult
from stylefw.objective.objective import Objective
from stylefw.runtime.lightning import ImageLogger, StepProgressBar, fit, sigterm_as_interrupt

INIT_CHOICES = ("content", "content_in_style_colors", "noise", "style")
SQRT2 = 2 ** 0.5

# Peak-memory model, on the safe side of the measured peak RSS (docs/performance.md, "Memory"): activations and
# their gradients per output pixel, plus one pair of image-sized float32 vectors (s, y) per optimizer history entry.
ACTIVATION_BYTES_PER_PIXEL = 2_800
HISTORY_BYTES_PER_PIXEL_PER_PAIR = 40
FIXED_BYTES = 384 * 2**20  # backbone weights, Lightning, the logger's service process


def optimizer_pairs(optimizer: OptimizerFactory) -> int:
    """Image-sized vector pairs the optimizer keeps, asked of the optimizer itself: an L-BFGS its
    ``history_size``; one without a history (Adam: two moment buffers) one pair."""
    return int(optimizer([nn.Parameter(torch.zeros(1))]).defaults.get("history_size", 1))


def initial_image(init: str, content: torch.Tensor, styles: Sequence[torch.Tensor],
                  style_weights: Sequence[float]) -> torch.Tensor:
    """The image optimisation starts from, at the content's size: ``init`` is ``content``,
    ``content_in_style_colors`` (the content's colours moved to the mean and covariance of the styles' blended
    colours, see :func:`~stylefw.image.color.move_color_statistics`), ``noise`` (uniform in [0, 1]), ``style`` (the first
    style resized to the content's size, stretched if its aspect differs), or an image path."""
    size = content.shape[-2:]
    if init == "content":
        return content.clone()
    if init == "content_in_style_colors":
        return move_color_statistics(content, *blended_color_statistics(styles, style_weights))
    if init == "noise":
        return torch.rand_like(content)
    if init == "style":
        return resize(styles[0], size).clamp(0, 1)
    image = load_image(init, None, role=f"method.init (one of {', '.join(INIT_CHOICES)} or an image)")
    return resize(image, size).clamp(0, 1)


def check_scales(scales: int | Sequence[int] | None) -> int | tuple[int, ...]:
    """`method.scales`: a count of passes (whole number of at least 1) or increasing sizes of coarse passes."""
    if scales is None:
        return 1
    if isinstance(scales, int) and not isinstance(scales, bool) and scales >= 1:
        return scales
    values = tuple(scales) if isinstance(scales, Sequence) and not isinstance(scales, str) else None
    if values is None or any(isinstance(v, bool) or not isinstance(v, int) or v < 16 for v in values) \
            or list(values) != sorted(set(values)):
        raise StylefwError(f"method.scales={scales} must be a number of passes (e.g. 3: size/2, size/√2, size) "
                           "or increasing sizes in pixels of at least 16, e.g. method.scales=[128,181,256]")
    return values


def pass_shapes(full: Sequence[int], scales: int | Sequence[int], style_shapes: Sequence[Sequence[int]] = (),
                min_side: int = 16) -> list[tuple[int, int]]:
    """(height, width) of each pass, ending with the full size: with a count N, N passes √2 apart in side;
    with sizes, those below the full size's longest side. A coarse pass that would shrink the content or a
    style (`style_shapes`) below `min_side` px on a side (what the backbone's deepest layer needs,
    :meth:`~stylefw.objective.objective.Objective.smallest_side`) is left out."""
    longest = max(full)
    sizes = [longest / SQRT2 ** k for k in range(scales - 1, 0, -1)] if isinstance(scales, int) else scales
    coarse = [scaled_shape(full, size / longest) for size in sizes if round(size) < longest]
    fits = [shape for shape in coarse
            if min(shape) >= min_side and all(min(scaled_shape(style, max(shape) / longest)) >= min_side
                                              for style in style_shapes)]
    return [*fits, (int(full[0]), int(full[1]))]


class _Steps(Dataset):
    """One dummy item per optimisation step: the image is the only thing being trained."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> int:
        return index


class PixelOptimization(pl.LightningModule):
    """The image is the only thing optimized; backbone weights and targets are frozen buffers.

    The parameters hold the pixels times `pixel_scale` (the optimizer's units); :meth:`pixels`
    gives them back in [0, 1] for the objective. With `pyramid_levels` L > 1 the image is the sum
    of L levels, the finest at full size and each coarser one at half the size of the last,
    upsampled bilinearly (Kolkin et al. 2019 optimize a Laplacian pyramid for the same reason): a
    coarse coefficient moves a whole patch of pixels, so colours and large shapes change in far
    fewer steps. `styles` is one style image or several, whose targets blend with `style_weights`
    (equal when None).
    """

    def __init__(self, objective: Objective, content: torch.Tensor, styles: torch.Tensor | Sequence[torch.Tensor],
                 init: torch.Tensor, optimizer: OptimizerFactory, clamp: bool, pixel_scale: float = 1.0,
                 style_weights: Sequence[float] | None = None, log_key: str = "loss", pyramid_levels: int = 1) -> None:
        super().__init__()
        self.log_key = log_key  # a coarse pass logs under its own key: its steps restart at 0
        self.objective = objective
        self.register_buffer("content", content, persistent=False)
        styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        self.style_buffers = [f"style_{index}" for index in range(len(styles))]  # buffers follow the module's device
        for name, style in zip(self.style_buffers, styles):
            self.register_buffer(name, style, persistent=False)
        self.style_weights = list(style_weights) if style_weights is not None else None
        self.pixel_scale = float(pixel_scale)
        self.image = nn.Parameter(init.clone() * self.pixel_scale)  # the finest level; the coarse ones start at 0
        height, width = init.shape[-2:]
        self.coarse = nn.ParameterList(
            nn.Parameter(init.new_zeros(*init.shape[:-2], max(1, height >> level), max(1, width >> level)))
            for level in range(1, pyramid_levels)
        )
        self.optimizer_factory = optimizer
        self.clamp = clamp
        # The last image whose loss was finite, and its loss parts: what a run that blows up keeps.
        self.register_buffer("last_good", init.clone(), persistent=False)
        self.last_good_parts: dict[str, torch.Tensor] = {}
        self.last_good_step = 0

    def on_fit_start(self) -> None:
        # Targets are computed here, once, on whatever device Lightning moved the module to.
        styles = [getattr(self, name) for name in self.style_buffers]
        self.objective.set_targets(weights={"style": self.style_weights} if self.style_weights else None,
                                   content=self.content, style=styles)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        total, parts = self.objective(self.pixels())
        self.keep_if_finite(parts)
        self.log_dict({f"{self.log_key}/{name}": value.detach() for name, value in parts.items()}, batch_size=1)
        self.log(f"{self.log_key}/total", total.detach(), batch_size=1)
        return total

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        if self.clamp:
            with torch.no_grad():  # the finest level takes up what the clamp changes in the sum
                composed = self.composed()
                self.image.add_(composed.clamp(0, self.pixel_scale) - composed)

    def keep_if_finite(self, parts: dict[str, torch.Tensor]) -> None:
        """Remember the current image if every loss term is finite, else stop the run (NonFiniteLossError)."""
        if not parts:
            return
        values = torch.stack([value.detach() for value in parts.values()])
        finite = torch.isfinite(values)
        if bool(finite.all()):  # the one device sync this guard costs per evaluation
            self.last_good.copy_(self.pixels().detach())
            self.last_good_parts = {name: value for name, value in zip(parts, values)}
            self.last_good_step = self.trainer.global_step
            return
        bad = [name for name, ok in zip(parts, finite.tolist()) if not ok]
        kind = "NaN" if bool(torch.isnan(values).any()) else "infinite"
        raise NonFiniteLossError(bad, self.trainer.global_step + 1, kind)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory([self.image, *self.coarse])

    def composed(self) -> torch.Tensor:
        """The image in the optimizer's units: the finest level plus every coarser one upsampled."""
        image = self.image
        for level in self.coarse:
            image = image + F.interpolate(level, size=self.image.shape[-2:], mode="bilinear", align_corners=False)
        return image

    def pixels(self) -> torch.Tensor:
        return self.composed() / self.pixel_scale

    def current_image(self) -> torch.Tensor:
        return self.pixels().detach().clamp(0, 1)


class PixelMethod(Method):
    """Gatys-style optimisation of the pixels.

    Args:
        steps: optimizer steps (one objective evaluation each with the L-BFGS configs and Adam).
        init: ``content``, ``content_in_style_colors`` (the content with its colours' mean and covariance
            moved to the styles' blend: the layout of the photo, the palette of the painting), ``noise``
            (uniform), ``style`` (the first style, resized to the content), or an image path. Under
            ``preserve_color=luminance`` content and style are the run's grey luminance images.
        log_every: log loss terms every N steps.
        image_every: log the current image every N steps (0 = only the final image).
        clamp: project the image back into [0, 1] after every step. Without it L-BFGS drifts
            outside the displayable range and the saved (clipped) image loses part of what was optimized.
        pixel_scale: the optimizer sees pixels in 0..pixel_scale units (default 255, as the Caffe-era
            implementations optimize). torch's L-BFGS takes its first step with an L1 norm of ``lr`` in
            parameter units; in [0, 1] units that step is so large that the curvature pair it yields
            misleads every later step and some image pairs diverge to noise. Step sizes of first-order
            optimizers (``optimizer.lr``) are in these units too.
        scales: coarse-to-fine: a number of passes N, whose longest sides grow by √2 up to ``size``
            (3 at 512: 256, 362, 512), or the longest sides, in increasing order and below ``size``, of the
            passes that run before the one at ``size`` (``[128, 181, 256]`` before 362). Each pass runs ``steps``
            steps with its own targets (content and style resized by the pass's share of ``size``, so
            strokes keep their size relative to the image), starts from the previous pass's result
            upsampled, and gets a fresh optimizer. 1, None or ``[]``: a single pass at ``size``.
        pyramid_levels: optimize the image as this many levels, each at half the size of the last and
            upsampled into the sum (see :class:`PixelOptimization`); 1: the pixels themselves. It speeds up a
            start from the photo's own colours; from the default start it does not pay (docs/performance.md).
    """

    def __init__(self, steps: int = 60, init: str = "content_in_style_colors", log_every: int = 10,
                 image_every: int = 100, clamp: bool = True, pixel_scale: float = 255.0,
                 scales: int | Sequence[int] | None = 1, pyramid_levels: int = 1) -> None:
        self.steps = check_whole_number("method.steps", steps)
        self.log_every = check_whole_number("method.log_every", log_every)
        self.image_every = check_whole_number("method.image_every", image_every, 0)
        self.pyramid_levels = check_whole_number("method.pyramid_levels", pyramid_levels)
        self.pixel_scale = check_number("method.pixel_scale", pixel_scale, above=0, hint="255: 8-bit units")
        self.scales = check_scales(scales)
        self.init, self.clamp = init, clamp

    def peak_memory_bytes(self, height: int, width: int, context: RunContext) -> int:
        # An L-BFGS pair per step until the history is full (a fresh optimizer per coarse-to-fine pass).
        pairs = min(self.steps, optimizer_pairs(context.optimizer))
        per_pixel = ACTIVATION_BYTES_PER_PIXEL + HISTORY_BYTES_PER_PIXEL_PER_PAIR * pairs
        return FIXED_BYTES + height * width * per_pixel

    def run(self, context: RunContext) -> RunResult:
        full_size = context.content.shape[-2:]
        shapes = pass_shapes(full_size, self.scales, [style.shape[-2:] for style in context.styles],
                             context.objective.smallest_side())
        first = resize(context.content, shapes[0])  # every start, noise too, is made at the first pass's size
        image = initial_image(self.init, first, context.styles, context.style_weights)
        steps, result, finished = 0, None, -1
        try:
            with sigterm_as_interrupt():  # also between passes: a stop keeps the last pass's result
                for index, shape in enumerate(shapes):
                    factor = max(shape) / max(full_size)
                    gc.collect()  # Lightning's reference cycles would keep the last pass's L-BFGS history alive
                    result = self.optimize(context, resize(context.content, shape),
                                           [resize(style, scaled_shape(style.shape[-2:], factor))
                                            for style in context.styles],
                                           resize(image, shape), final=index == len(shapes) - 1)
                    steps += result.steps
                    image = result.image
                    finished = index
                    if result.status != "completed":
                        break
        except KeyboardInterrupt:  # between passes: the last finished pass is the result
            if result is None:
                raise
            result.status = "interrupted"
        if result.status != "completed" and finished < len(shapes) - 1:
            # its losses were measured against that pass's smaller targets
            height, width = shapes[finished]
            result.report["stopped_in_pass"] = f"{finished + 1} of {len(shapes)}, {width}x{height}"
        result.steps = steps
        result.image = resize(result.image, full_size).clamp(0, 1)
        if len(shapes) > 1:
            result.report["passes"] = [f"{width}x{height}" for height, width in shapes]
        return result

    def optimize(self, context: RunContext, content: torch.Tensor, styles: list[torch.Tensor],
                 init: torch.Tensor, final: bool = True) -> RunResult:
        """One pass: `steps` optimizer steps from `init` against targets from `content` and `styles`; a coarse
        pass (not `final`) logs its losses and images under keys naming its size, as its steps restart at 0."""
        side = max(content.shape[-2:])
        log_key = "loss" if final else f"loss_{side}px"
        module = PixelOptimization(context.objective, content, styles, init, context.optimizer, self.clamp,
                                   self.pixel_scale, style_weights=context.style_weights, log_key=log_key,
                                   pyramid_levels=self.pyramid_levels)
        trainer = context.make_trainer(
            max_steps=self.steps,
            callbacks=[StepProgressBar("stylizing" if final else f"stylizing at {side} px"),
                       ImageLogger(self.image_every, key="image" if final else f"image_{side}px")],
            log_every_n_steps=self.log_every,
        )
        try:
            interrupted = fit(trainer, module, train_dataloaders=DataLoader(_Steps(self.steps), batch_size=1))
            image = module.current_image()
            with torch.no_grad():
                _, parts = module.objective(image.to(module.device))
            module.keep_if_finite(parts)  # the last update is evaluated only here
        except NonFiniteLossError as error:
            return self.failed_result(module, error)
        losses = {name: float(value) for name, value in parts.items()}
        losses["total"] = sum(losses.values())
        return RunResult(image=image.cpu(), losses=losses, steps=trainer.global_step,
                         status="interrupted" if interrupted else "completed")

    @staticmethod
    def failed_result(module: PixelOptimization, error: NonFiniteLossError) -> RunResult:
        """The last image whose loss was finite, with those losses and its step count, marked failed."""
        losses = {name: float(value) for name, value in module.last_good_parts.items()}
        losses["total"] = sum(losses.values()) if losses else None  # None: not even the first evaluation was finite
        return RunResult(image=module.last_good.detach().clamp(0, 1).cpu(), losses=losses, steps=module.last_good_step,
                         status="failed", error=str(error),
                         failed_terms=list(error.terms), report={"failed_step": error.step})
