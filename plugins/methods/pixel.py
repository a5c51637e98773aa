"""method=pixel: optimize the image itself (Gatys, Ecker & Bethge 2016) with a Lightning Trainer."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stylefw.errors import StylefwError
from stylefw.experiment_log import ImageLogger
from stylefw.images import load_image
from stylefw.method import Method, OptimizerFactory, RunContext, RunResult
from stylefw.objective import Objective
from stylefw.training import StepProgressBar, fit

INIT_CHOICES = ("content", "noise", "style")


class _Steps(Dataset):
    """One dummy item per optimisation step: the image is the only thing being trained."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> int:
        return index


class PixelOptimization(pl.LightningModule):
    """The image is the only parameter; backbone weights and targets are frozen buffers."""

    def __init__(self, objective: Objective, content: torch.Tensor, style: torch.Tensor, init: torch.Tensor,
                 optimizer: OptimizerFactory, clamp: bool) -> None:
        super().__init__()
        self.objective = objective
        self.register_buffer("content", content, persistent=False)
        self.register_buffer("style", style, persistent=False)
        self.image = nn.Parameter(init.clone())
        self.optimizer_factory = optimizer
        self.clamp = clamp

    def on_fit_start(self) -> None:
        # Targets are computed here, once, on whatever device Lightning moved the module to.
        self.objective.set_targets(content=self.content, style=self.style)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        total, parts = self.objective(self.image)
        self.log_dict({f"loss/{name}": value.detach() for name, value in parts.items()}, batch_size=1)
        self.log("loss/total", total.detach(), batch_size=1)
        return total

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        if self.clamp:
            with torch.no_grad():
                self.image.clamp_(0, 1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory([self.image])

    def current_image(self) -> torch.Tensor:
        return self.image.detach().clamp(0, 1)


class PixelMethod(Method):
    """Gatys-style optimisation of the pixels.

    Args:
        steps: optimizer steps (one objective evaluation each with L-BFGS ``max_iter=1``).
        init: ``content``, ``noise`` (uniform), ``style`` (resized to the content), or an image path.
        log_every: log loss terms every N steps.
        image_every: log the current image every N steps (0 = only the final image).
        clamp: project the image back into [0, 1] after every step. Without it L-BFGS drifts
            outside the displayable range and the saved (clipped) image loses part of what was optimized.
    """

    def __init__(self, steps: int = 300, init: str = "content", log_every: int = 10, image_every: int = 100,
                 clamp: bool = True) -> None:
        if steps < 1:
            raise StylefwError(f"method.steps={steps} must be at least 1")
        self.steps, self.init = steps, init
        self.log_every, self.image_every = log_every, image_every
        self.clamp = clamp

    def initial_image(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        size = content.shape[-2:]
        if self.init == "content":
            return content.clone()
        if self.init == "noise":
            return torch.rand_like(content)
        if self.init == "style":
            return F.interpolate(style, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        image = load_image(self.init, None, role=f"method.init (one of {', '.join(INIT_CHOICES)} or an image)")
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)

    def run(self, context: RunContext) -> RunResult:
        module = PixelOptimization(
            context.objective, context.content, context.style,
            self.initial_image(context.content, context.style), context.optimizer, self.clamp,
        )
        trainer = context.make_trainer(
            max_steps=self.steps,
            callbacks=[StepProgressBar("stylizing"), ImageLogger(self.image_every)],
            log_every_n_steps=self.log_every,
        )
        interrupted = fit(trainer, module, train_dataloaders=DataLoader(_Steps(self.steps), batch_size=1))
        image = module.current_image()
        with torch.no_grad():
            _, parts = module.objective(image.to(module.device))
        losses = {name: float(value) for name, value in parts.items()}
        losses["total"] = sum(losses.values())
        return RunResult(image=image.cpu(), losses=losses, steps=trainer.global_step,
                         status="interrupted" if interrupted else "completed")
