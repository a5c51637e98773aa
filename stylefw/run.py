"""One stylefw run: build every plugin from the composed config, run the method, save the outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from stylefw import experiment_log
from stylefw.allocator import freed_memory_kept
from stylefw.errors import StylefwError
from stylefw.builders import build, build_logger
from stylefw.checks import check_term_weights, weight_key
from stylefw.context import RunContext
from stylefw.creative import CreativeControls, quality_scores, stylize
from stylefw.images import resolve_image_path
from stylefw.metrics import build_quality_metrics
from stylefw.method import Method, RunResult
from stylefw.outputs import check_output_path, write_run_outputs
from stylefw.peak_memory import peak_memory_mb, reset_peak_memory
from stylefw.resources import training_device
from stylefw.sweep_job import check_objective, objective_value


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
    check_objective(cfg)
    CreativeControls.from_config(cfg).check_files()


def result_name(cfg: DictConfig) -> str:
    """``<content>_<style>.png``; several styles are joined with ``+`` (``astronaut_church_at_auvers+night_cafe``)."""
    content = resolve_image_path(cfg.content, "content").stem
    styles = "+".join(resolve_image_path(spec, "style").stem for spec in CreativeControls.from_config(cfg).styles)
    return f"{content}_{styles}.png"


def check_mode(cfg: DictConfig, method: Method) -> None:
    mode = cfg.get("mode")
    if mode is not None and mode not in method.modes:
        raise StylefwError(f"mode={mode} is not a mode of {type(method).__name__}: use one of "
                           f"{', '.join(method.modes)}, or leave mode unset")


def result_quality(quality_metrics: Any, result: RunResult, context: RunContext) -> dict[str, float]:
    """The loss-independent scores of the result, against the images the method names or else the run's."""
    if quality_metrics is None or not result.scored:
        return {}
    if result.references is not None:
        content, style = result.references
        return quality_scores(quality_metrics, result.image, content, [style], [1.0])
    return quality_scores(quality_metrics, result.image, context.original_content, context.original_styles,
                          context.style_weights)


def run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run the job described by `cfg`, writing into `output_dir`; returns the metrics it saved."""
    threads = torch.get_num_threads()
    try:
        with freed_memory_kept():
            return _run(cfg, output_dir)
    finally:
        torch.set_num_threads(threads)  # the next run in this process (a sweep's) starts from the same default


def _run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    reset_peak_memory()  # a sweep's worker process runs job after job: record this run's peak, not theirs
    validate(cfg)
    output = check_output_path(cfg.output, cfg.overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, verbose=False)

    method: Method = build(cfg.method, "method")
    check_mode(cfg, method)
    planned = method.planned_shape(cfg)
    if planned is not None:
        method.check_resources(*planned, training_device(cfg.trainer.get("accelerator", "auto")), cfg)
    quality_metrics = build_quality_metrics(cfg.get("metrics"))
    logger = build_logger(cfg, output_dir)
    context = RunContext(cfg, output_dir, logger)
    started = time.perf_counter()
    status = "failed"
    try:
        result: RunResult = stylize(method, context)  # method.run with the creative controls around it
        status = result.status
        quality = result_quality(quality_metrics, result, context)
        experiment_log.log_image(logger, "result", result.image, result.steps)
        experiment_log.log_metrics(logger, {f"quality/{name}": value for name, value in quality.items()},
                                   result.steps)
    finally:
        experiment_log.finish(logger, "success" if status == "completed" else status)
    seconds = time.perf_counter() - started

    png_path = output_dir / (result.name or result_name(cfg))
    if result.status == "failed":
        result.error = failure_message(result, png_path)
    metrics = {
        "status": result.status,
        **({"error": result.error} if result.error else {}),
        "steps": result.steps,
        "seconds": round(seconds, 3),
        "threads": torch.get_num_threads(),  # CPU results are bit-identical only with the same thread count
        "seconds_per_step": round(seconds / max(result.steps, 1), 4),
        "size": list(result.image.shape[-2:]),
        "loss": result.losses,
        **({"quality": quality} if quality else {}),
        **peak_memory_mb(),
        **result.extra,
        **({"files": result.files} if result.files else {}),
    }
    objective = objective_value(metrics, cfg.get("objective"))
    if objective is not None:
        metrics["objective"] = objective  # what this run returns to a sweep (README "Sweeps")
    if result.status == "failed":
        output = None  # a failed run's last good image stays in its run folder, not at the user's path
    metrics["image"] = str(output_dir / png_path.name)  # in metrics.json too: a sweep's summary reads it there
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
    step_size = result.extra.get("step_size_key", "optimizer.lr")
    lower = f"lower {keys} or {step_size}" if keys else f"lower {step_size}"
    return f"{result.error}: {lower} (last good image saved to {png})"
