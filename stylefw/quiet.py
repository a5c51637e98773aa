"""Silence Lightning's and wandb's start-up chatter unless the user asks for it (verbose=true)."""

from __future__ import annotations

import logging
import os
import warnings

_NOISY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*module\(s\) in eval mode at the start of training.*",
    r".*is smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*The anonymous setting has no effect.*",
)
_NOISY_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning", "lightning.pytorch", "lightning.fabric")


def configure(verbose: bool) -> None:
    if verbose:
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    import pytorch_lightning  # noqa: F401  (its import resets its loggers to INFO, so it must come first)

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
