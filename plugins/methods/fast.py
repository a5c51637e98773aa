"""method=fast: a feed-forward net trained once per style, then stylizing any photo in one pass.

Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution". Three modes (the top-level ``mode`` key):

- ``train`` (default): train the `net` plugin on the `data` photos against the run's loss
  terms and style; checkpoints every ``checkpoint_every`` steps, at the end and on Ctrl-C or
  SIGTERM; ``checkpoint=`` resumes one. The run's image is the content stylized by the net.
- ``stylize``: ``checkpoint=`` names a trained net; ``content=`` is a photo or a folder of them.
- ``export``: write the trained net as ONNX, checked against torch with onnxruntime.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from stylefw.builders import build
from stylefw.errors import NonFiniteLossError, StylefwError
from stylefw.images import resolve_image_path
from stylefw.method import Method, RunContext, RunResult
from stylefw.resources import training_device
from stylefw.training import StepProgressBar, fit

from .fast_stylize import CHECKPOINT_FILE, load_net, read_checkpoint, resolve_checkpoint, stylize_image
from .fast_training import (CHECKPOINT_KEY, AtomicCheckpointIO, FastStyleTraining, InterruptCheckpoint,
                            PerceptualCriterion, TeacherCriterion)

MODES = ("train", "stylize", "export")


def whole_number(key: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise StylefwError(f"method.{key}={value} must be a whole number of at least {least}")
    return value


class FastMethod(Method):
    """Johnson et al.'s feed-forward style transfer, trained and run by Lightning.

    Args:
        steps: training steps (batches); Johnson et al.: 40 000 at batch 4.
        lr: Adam's step size (Johnson et al.: 1e-3).
        checkpoint_every: save ``checkpoints/last.ckpt`` every N steps (also at the end and on interrupt).
        val_every: validation images are stylized and logged every epoch, or every this many steps
            when epochs are shorter (a small photo folder).
        log_every: log loss terms every N steps.
        tile: stylizing: images larger than this on a side are processed in windows of this size.
        overlap: stylizing: neighbouring windows share (and cross-fade over) this many pixels.
        teacher: distillation: a trained net's checkpoint (or run folder); the net then learns to
            reproduce the teacher's output (mean squared pixel difference) instead of minimizing the
            loss terms, with no backbone pass per step. Trains a slim net from a full one.
    """

    modes = MODES
    supports_mask_style = False  # the net knows one style, fixed when it was trained

    def __init__(self, steps: int = 2000, lr: float = 1e-3, checkpoint_every: int = 200, val_every: int = 100,
                 log_every: int = 10, tile: int = 1024, overlap: int = 64, teacher: str | None = None) -> None:
        self.steps = whole_number("steps", steps, 1)
        self.checkpoint_every = whole_number("checkpoint_every", checkpoint_every, 1)
        self.log_every = whole_number("log_every", log_every, 1)
        self.val_every = whole_number("val_every", val_every, 1)
        self.tile = whole_number("tile", tile, 64)
        self.overlap = whole_number("overlap", overlap, 0)
        if self.overlap * 2 >= self.tile:
            raise StylefwError(f"method.overlap={overlap} must be less than half of method.tile={tile}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise StylefwError(f"method.lr={lr} must be a positive number (Johnson et al.: 1e-3)")
        self.lr = float(lr)
        self.teacher = teacher

    def planned_shape(self, cfg: DictConfig) -> tuple[int, int] | None:
        # Stylizing is tiled (memory bounded whatever the size); training memory depends on data.crop, not content.
        return None

    def run(self, context: RunContext) -> RunResult:
        mode = context.cfg.get("mode") or "train"
        if mode == "train":
            return self.train(context)
        from .fast_inference import export, stylize  # only stylizing and exporting need them

        return stylize(self, context) if mode == "stylize" else export(self, context)

    def train(self, context: RunContext) -> RunResult:
        cfg = context.cfg
        if context.controls.preserve_color:
            # The net learns from the training photos, which the colour controls (made for one content image) miss.
            raise StylefwError(f"preserve_color={context.controls.preserve_color} applies when stylizing: train "
                               "without it, then add it to the mode=stylize command")
        resume = resolve_checkpoint(cfg.checkpoint, "train") if cfg.get("checkpoint") else None
        module = self.training_module(context, training_net_config(cfg, resume))
        data = build(cfg.data, "data", longest_side=cfg.data.get("longest_side") or cfg.size, seed=cfg.seed,
                     max_pixels=cfg.max_image_pixels)
        last = context.output_dir / CHECKPOINT_FILE
        trainer = context.make_trainer(
            max_steps=self.steps,
            callbacks=[StepProgressBar("training"), self.periodic_checkpoints(last.parent), InterruptCheckpoint(last)],
            log_every_n_steps=self.log_every,
            plugins=[AtomicCheckpointIO()],
            enable_checkpointing=True,
            use_distributed_sampler=False,  # the data module shards the photos itself (resumable by step)
        )
        self.space_validation(trainer, data, cfg.trainer)
        interrupted, failure = fit_resumably(trainer, module, data, resume)
        if failure is None and not interrupted:
            trainer.save_checkpoint(last)
        if trainer.global_rank != 0:
            sys.exit(0)  # a worker process of multi-device training: rank 0 writes the outputs
        return self.training_result(context, module, trainer.global_step, interrupted, failure,
                                    {"checkpoint": str(last), "data": data.summary(), "processes": trainer.world_size})

    def training_module(self, context: RunContext, net_config: dict[str, Any]) -> FastStyleTraining:
        """The net to train and what it learns from: the run's loss terms and style, or `teacher`'s outputs."""
        style_paths = [resolve_image_path(spec, "style").resolve() for spec in context.controls.styles]
        style_name = "+".join(path.stem for path in style_paths)
        info = {"net": net_config, "style": style_name, "style_path": str(style_paths[0]), "size": context.cfg.size}
        if self.teacher is None:
            criterion = PerceptualCriterion(context.objective, context.styles, context.style_weights)
        else:
            teacher, teacher_info = load_net(resolve_checkpoint(self.teacher, "train", key="method.teacher"))
            if teacher_info["style"] != style_name:
                raise StylefwError(f"method.teacher was trained on the style '{teacher_info['style']}', not "
                                   f"'{style_name}': add style=<that image> (it names and scores the results)")
            criterion = TeacherCriterion(teacher)
            info.update(style=teacher_info["style"], style_path=teacher_info.get("style_path", ""),
                        teacher=self.teacher)
        return FastStyleTraining(build(net_config, "net"), criterion, self.lr, info)

    def space_validation(self, trainer: Any, data: Any, trainer_options: DictConfig) -> None:
        """Validate every epoch, but with small photo folders (epochs of a few steps) only every `val_every` steps."""
        if "check_val_every_n_epoch" in trainer_options or not hasattr(data, "steps_per_epoch"):
            return
        data.setup("fit")
        trainer.check_val_every_n_epoch = max(1, round(self.val_every / data.steps_per_epoch(trainer.world_size)))

    def periodic_checkpoints(self, folder: Path) -> ModelCheckpoint:
        return ModelCheckpoint(dirpath=folder, every_n_train_steps=self.checkpoint_every, save_last=True,
                               save_top_k=0, enable_version_counter=False)

    def training_result(self, context: RunContext, module: FastStyleTraining, steps: int, interrupted: bool,
                        failure: NonFiniteLossError | None, extra: dict[str, Any]) -> RunResult:
        """The content stylized by the trained net, with the objective's terms on it."""
        if failure is not None:
            module.net.load_state_dict(module.last_good)
        device = stylizing_device(context.cfg)
        net = module.net.eval().to(device)
        image = stylize_image(net, context.content, self.tile, self.overlap, device)
        objective = context.objective.to(device)
        with torch.no_grad():
            objective.set_targets({"style": context.style_weights}, content=context.content.to(device),
                                  style=[style.to(device) for style in context.styles])
            _, parts = objective(image.to(device))
        losses: dict[str, float | None] = {name: float(value) for name, value in parts.items()}
        losses["total"] = sum(value for value in losses.values() if value is not None)
        files = [extra["checkpoint"]]
        if failure is not None:
            terms = [term for term in failure.terms if term != "teacher"]
            extra.update(failed_terms=terms, failed_step=failure.step, step_size_key="method.lr")
            return RunResult(image=image, losses=losses, steps=steps, status="failed", error=str(failure), extra=extra,
                             files=files)
        return RunResult(image=image, losses=losses, steps=steps, status="interrupted" if interrupted else "completed",
                         extra=extra, files=files)


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


def stylizing_device(cfg: DictConfig) -> torch.device:
    return training_device(cfg.trainer.get("accelerator", "auto"))
