"""Instantiate plugins from the composed config, with plugin errors reported as one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stylefw.errors import StylefwError
from stylefw.loss import LossTerm


def build(node: Any, what: str, **kwargs: Any) -> Any:
    """instantiate() with plugin errors reported as one line naming the config entry."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, StylefwError):
            raise error.__cause__ from None
        raise StylefwError(f"{what} could not be built: {' '.join(str(error).split())}") from error


def build_terms(cfg: DictConfig) -> dict[str, LossTerm]:
    """The always-on content term plus every term selected in the `loss` group, keyed by name."""
    terms = {"content": build(cfg.content_loss, "content_loss")}
    for name, term_cfg in (cfg.loss or {}).items():
        if name in terms:
            raise StylefwError(f"loss term name '{name}' is reserved for content_loss: rename the loss option")
        terms[name] = build(term_cfg, f"loss.{name}")
    for name, term in terms.items():
        if not isinstance(term, LossTerm):
            raise StylefwError(f"loss term '{name}' built a {type(term).__name__}, not a stylefw.loss.LossTerm")
    return terms


def build_logger(cfg: DictConfig, output_dir: Path) -> Any:
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return None
    logger = build(cfg.logger, "logger", save_dir=str(output_dir))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger
