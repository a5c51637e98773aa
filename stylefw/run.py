"""One stylefw run: build every plugin from the composed config, run the method, save the outputs."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from stylefw import experiment_log
from stylefw.errors import StylefwError
from stylefw.builders import build, build_logger
from stylefw.checks import check_term_weights, weight_key
from stylefw.context import RunContext
from stylefw.images import planned_shape, resolve_image_path
from stylefw.metrics import build_quality_metrics
from stylefw.method import Method, RunResult
from stylefw.outputs import check_output_path, write_run_outputs
from stylefw.resources import training_device


def validate(cfg: DictConfig) -> None:
    """Range checks the typed schema (stylefw/schema.py) cannot express, each naming the fix."""
    if not isinstance(cfg.size, int) or cfg.size < 1:
        raise StylefwError(f"size={cfg.size} must be a positive whole number of pixels (the longest side)")
    if cfg.threads is not None and (not isinstance(cfg.threads, int) or cfg.threads < 1):
        raise StylefwError(f"threads={cfg.threads} must be a positive whole number or null (torch's default)")
    limit = cfg.get("max_image_pixels")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise StylefwError(f"max_image_pixels={limit} must be a positive whole number, or null for no limit")
    check_term_weights(cfg)


def peak_memory_mb() -> dict[str, float]:
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memory = {"peak_rss_mb": round(rss_kb / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)}
    if torch.cuda.is_available():
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory


def result_name(cfg: DictConfig) -> str:
    content = resolve_image_path(cfg.content, "content").stem
    style = resolve_image_path(cfg.style, "style").stem
    return f"{content}_{style}.png"


def run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run the job described by `cfg`, writing into `output_dir`; returns the metrics it saved."""
    validate(cfg)
    output = check_output_path(cfg.output, cfg.overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, verbose=False)

    method: Method = build(cfg.method, "method")
    planned = planned_shape(cfg.content, cfg.size, role="content", max_pixels=cfg.max_image_pixels)
    method.check_resources(*planned, training_device(cfg.trainer.get("accelerator", "auto")))
    quality_metrics = build_quality_metrics(cfg.get("metrics"))
    logger = build_logger(cfg, output_dir)
    context = RunContext(cfg, output_dir, logger)
    started = time.perf_counter()
    status = "failed"
    try:
        result: RunResult = method.run(context)
        status = result.status
        quality = quality_metrics(result.image, context.content, context.style) if quality_metrics else {}
        experiment_log.log_image(logger, "result", result.image, result.steps)
        experiment_log.log_metrics(logger, {f"quality/{name}": value for name, value in quality.items()},
                                   result.steps)
    finally:
        experiment_log.finish(logger, "success" if status == "completed" else status)
    seconds = time.perf_counter() - started

    png_path = output_dir / result_name(cfg)
    if result.status == "failed":
        result.error = failure_message(result, png_path)
    metrics = {
        "status": result.status,
        **({"error": result.error} if result.error else {}),
        "steps": result.steps,
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / max(result.steps, 1), 4),
        "size": list(result.image.shape[-2:]),
        "loss": result.losses,
        **({"quality": quality} if quality else {}),
        **peak_memory_mb(),
        **result.extra,
    }
    if result.status == "failed":
        output = None  # a failed run's last good image stays in its run folder, not at the user's path
    png = write_run_outputs(result.image, png_path.name, OmegaConf.to_yaml(cfg, resolve=True), metrics,
                            output_dir, output, cfg.overwrite)
    metrics["image"] = str(png)
    if output is not None:
        metrics["output"] = str(output)
    return metrics


def failure_message(result: RunResult, png: Path) -> str:
    """A failed run's error with the fix: which weights (or the step size) to lower, and where its image went."""
    terms = result.extra.get("failed_terms") or []
    keys = " or ".join(weight_key(term) for term in terms)
    lower = f"lower {keys} or optimizer.lr" if keys else "lower optimizer.lr"
    return f"{result.error}: {lower} (last good image saved to {png})"
