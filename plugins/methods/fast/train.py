"""``mode=train``: train a feed-forward style net with Lightning against the run's loss terms (or a teacher net),
with crash-safe checkpoints, resuming and Ctrl-C."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from stylefw.errors import NonFiniteLossError, StylefwError, build
from stylefw.image.grid import grid
from stylefw.image.io import resolve_image_path, to_pil
from stylefw.method import OptimizerFactory, RunContext, RunResult
from stylefw.objective.objective import Objective
from stylefw.runtime.lightning import StepProgressBar, StepTimer, fit, log_image

from .checkpoint import (CHECKPOINT_FILE, CHECKPOINT_KEY, AtomicCheckpointIO, InterruptCheckpoint, load_net,
                         read_checkpoint, resolve_checkpoint)
from .stylize import stylize_image


@dataclass(frozen=True)
class TrainingSettings:
    """The `method` keys of a training run (see :class:`~.method.FastMethod`)."""

    steps: int
    checkpoint_every: int
    val_every: int
    log_every: int
    teacher: str | None


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
        optimizer: builds the optimizer for the net's parameters (the `optimizer` group's).
        checkpoint_info: stored in every checkpoint under ``"stylefw"``: at least ``net``, the
            net's config (with ``_target_``), which is what stylizing rebuilds the net from.
        check_every: the loss is checked for NaN or infinity (and the weights that gave a finite one
            remembered) every this many steps: each check waits for the device, so not every step.
    """

    def __init__(self, net: torch.nn.Module, criterion: Criterion, optimizer: OptimizerFactory,
                 checkpoint_info: dict[str, Any], check_every: int = 1) -> None:
        super().__init__()
        self.net = net
        object.__setattr__(self, "criterion", criterion)  # not a child: no backbone weights in checkpoints
        self.optimizer_factory = optimizer
        self.checkpoint_info = checkpoint_info
        self.check_every = check_every
        self.last_parts: dict[str, torch.Tensor] = {}
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
        self.last_parts = {name: value.detach() for name, value in parts.items()}
        if self.trainer.global_step % self.check_every == 0:
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

    def on_train_end(self) -> None:
        if self.last_parts:  # the steps since the last check
            self.keep_if_finite(self.last_parts)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        photos = batch["image"]
        stylized, total, _ = self.evaluate(photos)
        self.log("val/loss", total, batch_size=len(photos), sync_dist=True)
        if batch_idx == 0:
            self.validation_sample = (photos.detach().cpu(), stylized.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if self.validation_sample is not None and self.trainer.is_global_zero and self.logger is not None:
            photos, stylized = self.validation_sample
            preview = grid([to_pil(image) for image in (*photos, *stylized.clamp(0, 1))], columns=len(photos), gap=4)
            log_image(self.logger, "validation", preview, self.global_step)
        self.validation_sample = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_info


# --------------------------------------------------------------------------- the training run


def train(context: RunContext, settings: TrainingSettings, tile: int, overlap: int) -> RunResult:
    """Train the `net` plugin on the `data` photos; the run's image is the content stylized by the trained net."""
    cfg = context.cfg
    if context.controls.preserve_color:
        # The net learns from the training photos, which the colour controls (made for one content image) miss.
        raise StylefwError(f"preserve_color={context.controls.preserve_color} applies when stylizing: train "
                           "without it, then add it to the mode=stylize command")
    resume = resolve_checkpoint(cfg.checkpoint, "train") if cfg.get("checkpoint") else None
    module = training_module(context, training_net_config(cfg, resume), settings.teacher, settings.log_every)
    data = build(cfg.data, "data", longest_side=cfg.data.get("longest_side") or cfg.size, seed=cfg.seed,
                 max_pixels=cfg.max_image_pixels)
    last = context.output_dir / CHECKPOINT_FILE
    timer = StepTimer()
    trainer = context.make_trainer(
        max_steps=settings.steps,
        callbacks=[StepProgressBar("training"), timer, periodic_checkpoints(last.parent, settings.checkpoint_every),
                   InterruptCheckpoint(last)],
        log_every_n_steps=settings.log_every,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=True,
        use_distributed_sampler=False,  # the data module shards the photos itself (resumable by step)
    )
    space_validation(trainer, data, cfg.trainer, settings.val_every)
    interrupted, failure = fit_resumably(trainer, module, data, resume)
    if failure is None and not interrupted:
        trainer.save_checkpoint(last)
    if trainer.global_rank != 0:
        sys.exit(0)  # a worker process of multi-device training: rank 0 writes the outputs
    report = {"checkpoint": str(last), "data": data.summary(), "processes": trainer.world_size,
              "steps_per_second": timer.steps_per_second}
    return training_result(context, module, trainer.global_step, interrupted, failure, report, tile, overlap)


def training_module(context: RunContext, net_config: dict[str, Any], teacher: str | None,
                    check_every: int = 1) -> FastStyleTraining:
    """The net to train and what it learns from: the run's loss terms and style, or `teacher`'s outputs."""
    style_paths = [resolve_image_path(spec, "style").resolve() for spec in context.controls.styles]
    style_name = "+".join(path.stem for path in style_paths)
    info = {"net": net_config, "style": style_name, "style_path": str(style_paths[0]), "size": context.cfg.size}
    if teacher is None:
        criterion = PerceptualCriterion(context.objective, context.styles, context.style_weights)
    else:
        teacher_net, teacher_info = load_net(resolve_checkpoint(teacher, "train", key="method.teacher"))
        if teacher_info["style"] != style_name:
            raise StylefwError(f"method.teacher was trained on the style '{teacher_info['style']}', not "
                               f"'{style_name}': add style=<that image> (it names and scores the results)")
        criterion = TeacherCriterion(teacher_net)
        info.update(style=teacher_info["style"], style_path=teacher_info.get("style_path", ""), teacher=teacher)
    return FastStyleTraining(build(net_config, "net"), criterion, context.optimizer, info, check_every)


def space_validation(trainer: Any, data: Any, trainer_options: DictConfig, val_every: int) -> None:
    """Validate every epoch, but with small photo folders (epochs of a few steps) only every `val_every` steps."""
    if "check_val_every_n_epoch" in trainer_options or not hasattr(data, "steps_per_epoch"):
        return
    data.setup("fit")
    trainer.check_val_every_n_epoch = max(1, round(val_every / data.steps_per_epoch(trainer.world_size)))


def periodic_checkpoints(folder: Path, every: int) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=folder, every_n_train_steps=every, save_last=True, save_top_k=0,
                           enable_version_counter=False)


def fit_resumably(trainer: Any, module: FastStyleTraining, data: Any,
                  resume: Path | None) -> tuple[bool, NonFiniteLossError | None]:
    """Train (from `resume` when given); returns (interrupted, the non-finite-loss failure or None)."""
    try:
        with warnings.catch_warnings():
            # Resuming into a new run folder: Lightning says the old folder's checkpoint list is not carried over.
            warnings.filterwarnings("ignore", message=".*dirpath has changed.*")
            # weights_only: a checkpoint holds tensors and plain data, so no pickled code runs when resuming.
            return fit(trainer, module, datamodule=data, ckpt_path=str(resume) if resume else None,
                       weights_only=True), None
    except NonFiniteLossError as error:
        return False, error


def training_result(context: RunContext, module: FastStyleTraining, steps: int, interrupted: bool,
                    failure: NonFiniteLossError | None, report: dict[str, Any], tile: int, overlap: int) -> RunResult:
    """The content stylized by the trained net, with the objective's terms on it."""
    if failure is not None:
        module.net.load_state_dict(module.last_good)
    device = context.device
    image = stylize_image(module.net.eval().to(device), context.content, tile, overlap, device)
    objective = context.objective.to(device)
    with torch.no_grad():
        objective.set_targets({"style": context.style_weights}, content=context.content.to(device),
                              style=[style.to(device) for style in context.styles])
        _, parts = objective(image.to(device))
    losses: dict[str, float | None] = {name: float(value) for name, value in parts.items()}
    losses["total"] = sum(value for value in losses.values() if value is not None)
    files = [report["checkpoint"]]
    if failure is not None:
        report["failed_step"] = failure.step
        return RunResult(image=image, losses=losses, steps=steps, status="failed", error=str(failure), report=report,
                         failed_terms=[term for term in failure.terms if term != "teacher"], files=files)
    return RunResult(image=image, losses=losses, steps=steps, status="interrupted" if interrupted else "completed",
                     report=report, files=files)


def training_net_config(cfg: DictConfig, resume: Path | None) -> dict[str, Any]:
    """The net to train: the `net` group's, which must match the resumed checkpoint's when resuming."""
    if cfg.get("net") is None or "_target_" not in cfg.net:
        raise StylefwError("method=fast needs a transform net: add net=slim (CPU) or net=johnson (GPU)")
    wanted = OmegaConf.to_container(cfg.net, resolve=True)
    if resume is None:
        return wanted
    trained = read_checkpoint(resume)[CHECKPOINT_KEY]["net"]
    if trained != wanted:
        raise StylefwError(f"checkpoint={cfg.checkpoint} trains a different net ({describe(trained)}) than this "
                           f"command's ({describe(wanted)}): resume with the net options it was trained with")
    return wanted


def describe(net_config: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in net_config.items() if key != "_target_")
