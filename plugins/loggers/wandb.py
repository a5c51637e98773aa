"""Weights & Biases logger: offline unless the user asks for online, one wandb run per stylefw run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger

_MAX_TAG_LENGTH = 64  # wandb refuses longer tags
_MAX_GROUP_LENGTH = 128  # and longer groups


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger with stylefw's defaults.

    ``mode`` defaults to ``$WANDB_MODE`` or ``offline``: runs never need an account or the
    network; ``wandb sync <run dir>/wandb/offline-run-*`` uploads them later.

    In a sweep (``stylefw -m``) every job is its own wandb run, and unless the config sets them
    the runs share a ``group`` (the sweep's folder) and carry ``key=value`` tags: the job's
    overrides and its plugin choices (``loss=gram+tv``), so the wandb UI groups and filters them.
    """

    def __init__(self, save_dir: str, project: str = "stylefw", mode: str | None = None, **kwargs: Any) -> None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)  # else wandb warns that the git root does not exist
        identity = sweep_identity()
        if identity is not None:
            for key, value in (("group", identity.group), ("tags", identity.tags), ("name", identity.name)):
                if kwargs.get(key) is None:
                    kwargs[key] = value
            _finish_leftover_run()
        super().__init__(save_dir=save_dir, project=project, mode=mode or os.environ.get("WANDB_MODE", "offline"),
                         **kwargs)
        # Lightning always passes anonymous=None, which recent wandb warns about on every init.
        self._wandb_init.pop("anonymous", None)

    def finish(self) -> None:
        if self._experiment is not None:
            self._experiment.finish()
            self._experiment = None


def _finish_leftover_run() -> None:
    """Close a run an earlier job of this worker process left open, which Lightning would otherwise reuse."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


@dataclass(frozen=True)
class SweepIdentity:
    """Where wandb files one job of a sweep: the sweep's group, the job's `key=value` tags, and a name."""

    group: str
    tags: list[str]
    name: str


def sweep_identity() -> SweepIdentity | None:
    """The identity of the current job if it runs in a Hydra multirun, else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    overrides = [str(override) for override in hydra_cfg.overrides.task]
    overridden = {override.lstrip("+~").partition("=")[0] for override in overrides}
    choices = [f"{group}={option}" for group, option in hydra_cfg.runtime.choices.items()
               if not str(group).startswith("hydra/") and group not in overridden and option is not None]
    tags = [tag[:_MAX_TAG_LENGTH] for tag in dict.fromkeys([*overrides, *choices])]
    group = str(hydra_cfg.sweep.dir)[-_MAX_GROUP_LENGTH:]
    return SweepIdentity(group=group, tags=tags, name=f"{Path(group).name}#{hydra_cfg.job.num}")
