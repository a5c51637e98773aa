"""Training a feed-forward style net with Lightning: the LightningModule, crash-safe checkpoints, interrupts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from stylefw.atomic import atomic_write
from stylefw.errors import NonFiniteLossError
from stylefw.experiment_log import log_image
from stylefw.objective import Objective
from stylefw.training import interrupts_deferred

CHECKPOINT_KEY = "stylefw"  # the checkpoint entry that says how to rebuild the net and what it was trained on


class PerceptualCriterion:
    """Johnson et al.'s loss: the run's objective on the stylized batch, content targets from the batch itself.

    Per step the photos' content features are computed once (no gradient) as the content
    targets, and the stylized batch gets one backbone pass feeding every term; the style
    targets are set once (several styles blend with `style_weights`, as for method=pixel).
    """

    def __init__(self, objective: Objective, styles: list[torch.Tensor], style_weights: list[float]) -> None:
        self.objective, self.styles, self.style_weights = objective, styles, style_weights

    def setup(self, device: torch.device) -> None:
        self.objective.to(device)
        self.objective.set_targets({"style": self.style_weights}, style=[style.to(device) for style in self.styles])

    def __call__(self, photos: torch.Tensor, stylized: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.objective.set_targets(content=photos)
        return self.objective(stylized)


class TeacherCriterion:
    """Distillation: the mean squared difference (pixels in [0, 1]) from a trained teacher net's output.

    No backbone runs, so a step costs one teacher forward pass and the student's own passes.
    """

    def __init__(self, teacher: torch.nn.Module) -> None:
        self.teacher = teacher.eval().requires_grad_(False)

    def setup(self, device: torch.device) -> None:
        self.teacher.to(device)

    def __call__(self, photos: torch.Tensor, stylized: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            target = self.teacher(photos)
        loss = (stylized - target).pow(2).mean()
        return loss, {"teacher": loss}


Criterion = PerceptualCriterion | TeacherCriterion


class FastStyleTraining(pl.LightningModule):
    """Trains `net` so that ``criterion(photo, net(photo))`` is low for every photo (Johnson et al. 2016).

    The criterion (and the backbone or teacher it holds) is kept out of the module's children,
    so checkpoints hold only the net and the optimizer state.

    Args:
        net: the transform net (the only trained parameters).
        criterion: :class:`PerceptualCriterion` (the run's loss terms) or :class:`TeacherCriterion`.
        lr: Adam's step size.
        checkpoint_info: stored in every checkpoint under ``"stylefw"``: at least ``net``, the
            net's config (with ``_target_``), which is what stylizing rebuilds the net from.
    """

    def __init__(self, net: torch.nn.Module, criterion: Criterion, lr: float, checkpoint_info: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        object.__setattr__(self, "criterion", criterion)  # not a child: no backbone weights in checkpoints
        self.lr = lr
        self.checkpoint_info = checkpoint_info
        self.last_good: dict[str, torch.Tensor] = {}
        self.validation_sample: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_fit_start(self) -> None:
        self.criterion.setup(self.device)
        self.remember_weights()  # a first step that is already non-finite keeps these (restored, when resuming)

    def remember_weights(self) -> None:
        self.last_good = {name: value.detach().clone() for name, value in self.net.state_dict().items()}

    def evaluate(self, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(stylized photos, total loss, each term's weighted value)."""
        stylized = self.net(photos)
        total, parts = self.criterion(photos, stylized)
        return stylized, total, parts

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        photos = batch["image"]
        _, total, parts = self.evaluate(photos)
        self.keep_if_finite(parts)
        self.log_dict({f"loss/{name}": value.detach() for name, value in parts.items()}, batch_size=len(photos))
        self.log("loss/total", total.detach(), batch_size=len(photos))
        return total

    def keep_if_finite(self, parts: dict[str, torch.Tensor]) -> None:
        """Remember the weights that gave this finite loss, else stop the run (NonFiniteLossError)."""
        values = torch.stack([value.detach() for value in parts.values()])
        finite = torch.isfinite(values)
        if bool(finite.all()):  # one device sync per step
            self.remember_weights()
            return
        bad = [name for name, ok in zip(parts, finite.tolist()) if not ok]
        raise NonFiniteLossError(bad, self.trainer.global_step + 1, "NaN" if bool(values.isnan().any()) else "infinite")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        photos = batch["image"]
        stylized, total, _ = self.evaluate(photos)
        self.log("val/loss", total, batch_size=len(photos), sync_dist=True)
        if batch_idx == 0:
            self.validation_sample = (photos.detach().cpu(), stylized.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if self.validation_sample is not None and self.trainer.is_global_zero and self.logger is not None:
            log_image(self.logger, "validation", side_by_side(*self.validation_sample), self.global_step)
        self.validation_sample = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_info


def side_by_side(photos: torch.Tensor, stylized: torch.Tensor, gap: int = 4) -> torch.Tensor:
    """One 1×3×H×W image: the photos in the top row, their stylizations below, white gaps between."""

    def row(images: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for image in images:
            if parts:
                parts.append(image.new_ones(3, image.shape[-2], gap))
            parts.append(image)
        return torch.cat(parts, dim=-1)

    top, bottom = row(photos), row(stylized.clamp(0, 1))
    return torch.cat([top, top.new_ones(3, gap, top.shape[-1]), bottom], dim=-2).unsqueeze(0)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing to a temporary file renamed into place: a kill mid-save leaves
    the previous checkpoint intact, never half of one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with interrupts_deferred(), atomic_write(path, "wb") as stream:
            torch.save(checkpoint, stream)


class InterruptCheckpoint(pl.Callback):
    """Saves a checkpoint when training is interrupted (Ctrl-C, SIGTERM), so that resuming loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)
