"""One stylefw run, in order: check the config, build the method and its context, run the method with the
creative controls around it, score the result, write the run's files.

Nothing here knows a built-in plugin: every one is built from its config node (``_target_``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from stylefw.controls import CreativeControls
from stylefw.errors import StylefwError, build, check_number, check_whole_number
from stylefw.image.io import resolve_image_path, save_png
from stylefw.image.masks import composite
from stylefw.method import Method, RunContext, RunResult
from stylefw.quality import QualityMetrics, build_quality_metrics
from stylefw.runtime.files import atomic_write, is_writable_folder, write_json, write_text
from stylefw.runtime.lightning import log_image, log_metrics
from stylefw.runtime.resources import freed_memory_kept, peak_memory_mb, reset_peak_memory

CONFIG_CHUNK = "stylefw:config"  # the PNG text chunk holding the run's resolved config


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
    controls = check_config(cfg)
    output = check_output_path(cfg.output, cfg.overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, verbose=False)
    method: Method = build(cfg.method, "method")
    check_mode(cfg, method)
    context = RunContext(cfg, output_dir, controls)
    method.check_resources(context)
    quality_metrics = build_quality_metrics(cfg.get("metrics"))
    context.logger  # created before the work, so a logger that cannot start fails before anything is stylized
    started = time.perf_counter()
    status = "failed"
    try:
        result = stylize(method, context)
        status = result.status
        quality = scores(quality_metrics, result, context)
        log_image(context.logger, "result", result.image, result.steps)
        log_metrics(context.logger, {f"quality/{name}": value for name, value in quality.items()}, result.steps)
    finally:
        context.close_logger("success" if status == "completed" else status)
    seconds = time.perf_counter() - started
    name = result.name or result_name(cfg, controls)
    return write_outputs(cfg, result, quality, seconds, output_dir / name, output)


def check_config(cfg: DictConfig) -> CreativeControls:
    """Range checks the typed schema (stylefw/schema.py) cannot express, before anything is built; the creative
    controls, parsed and checked once."""
    check_whole_number("size", cfg.size, hint="pixels on the longest side")
    check_whole_number("threads", cfg.threads, optional=True, hint="null: torch's default")
    check_whole_number("max_image_pixels", cfg.get("max_image_pixels"), optional=True, hint="null: no limit")
    for key, node in {"content_loss": cfg.content_loss, **{f"loss.{name}": node
                                                           for name, node in (cfg.loss or {}).items()}}.items():
        weight = node.get("weight", 1.0) if isinstance(node, DictConfig) else 1.0
        check_number(f"{key}.weight", weight, least=0, hint="0 turns the term off")
    return CreativeControls.from_config(cfg)


def check_mode(cfg: DictConfig, method: Method) -> None:
    mode = cfg.get("mode")
    if mode is not None and mode not in method.modes:
        raise StylefwError(f"mode={mode} is not a mode of {type(method).__name__}: use one of "
                           f"{', '.join(method.modes)}, or leave mode unset")


def result_name(cfg: DictConfig, controls: CreativeControls) -> str:
    """``<content>_<style>.png``; several styles are joined with ``+`` (``astronaut_church_at_auvers+night_cafe``)."""
    content = resolve_image_path(cfg.content, "content").stem
    styles = "+".join(resolve_image_path(spec, "style").stem for spec in controls.styles)
    return f"{content}_{styles}.png"


# --------------------------------------------------------------------------- the method with the controls around it


def stylize(method: Method, context: RunContext) -> RunResult:
    """``method.run(context)`` with the creative controls applied around it.

    The content's colours are put back as ``preserve_color`` asks. With ``content_mask`` the result is
    composited through the feathered mask with the content outside, or with the result of a second
    pass styled by ``mask_style`` (run without the logger; its losses go to the report's
    ``mask_style``, and ``steps`` counts both passes). An interrupted or failed first pass skips the
    second one and keeps the content outside. A result that is not a stylization of the content
    (``scored=False``: an overview of many photos) is left as it is.
    """
    controls = context.controls
    controls.check_method(method)
    mask = context.content_mask  # loaded before any work, so a bad mask fails at once
    result = method.run(context)
    if not result.scored:
        return result
    result.image = context.restore_colors(result.image)
    if mask is None:
        return result
    outside = context.original_content
    if controls.mask_style is not None and result.status == "completed":
        rest_context = context.for_styles([controls.mask_style])
        rest = method.run(rest_context)
        outside = rest_context.restore_colors(rest.image)
        merge_second_pass(result, rest)
    result.image = composite(result.image, outside, mask).clamp(0, 1)
    return result


def merge_second_pass(result: RunResult, rest: RunResult) -> None:
    """Record the mask_style pass in `result`; its interruption or failure becomes the run's."""
    result.report["mask_style"] = {"loss": rest.losses, "steps": rest.steps, "status": rest.status, **rest.report}
    result.steps += rest.steps
    if rest.status != "completed":
        result.status, result.error, result.failed_terms = rest.status, rest.error, rest.failed_terms


def scores(metrics: QualityMetrics | None, result: RunResult, context: RunContext) -> dict[str, float]:
    """The loss-independent scores of the result, against the images the method names or else the run's."""
    if metrics is None or not result.scored:
        return {}
    if result.references is not None:
        content, style = result.references
        return metrics.score(result.image, content, [style], [1.0])
    return metrics.score(result.image, context.original_content, context.original_styles, context.style_weights)


# --------------------------------------------------------------------------- the run's files


def check_output_path(output: str | None, overwrite: bool) -> Path | None:
    """Fail before any work if `output` cannot be written or would overwrite a file without overwrite=true."""
    if not output:
        return None
    path = Path(os.path.expanduser(output)).resolve()
    if path.suffix.lower() != ".png":
        raise StylefwError(f"output={output} must end in .png: stylefw writes PNG files")
    if path.is_dir():
        raise StylefwError(f"output={output} is a directory: give a file name ending in .png")
    if path.exists() and not overwrite:
        raise StylefwError(f"output={output} already exists: choose another name or add overwrite=true")
    if not path.parent.is_dir():
        raise StylefwError(f"output={output}: folder {path.parent} does not exist: create it first")
    if not is_writable_folder(path.parent):
        raise StylefwError(f"output={output}: folder {path.parent} is not writable: choose another folder")
    return path


def write_outputs(cfg: DictConfig, result: RunResult, quality: dict[str, float], seconds: float, png: Path,
                  output: Path | None) -> dict[str, Any]:
    """The PNG (its config in a text chunk), config.yaml and metrics.json in the run folder, and the copy at
    `output` (not for a failed run, whose last good image stays in its run folder); returns the metrics."""
    if result.status == "failed":
        output = None
        weights = " or ".join(weight_key(term) for term in result.failed_terms)
        result.error = f"{result.error}: lower {f'{weights} or ' if weights else ''}optimizer.lr " \
                       f"(last good image saved to {png})"
    metrics = {
        "status": result.status,
        **({"error": result.error} if result.error else {}),
        **({"failed_terms": result.failed_terms} if result.failed_terms else {}),
        "steps": result.steps,
        "seconds": round(seconds, 3),
        "threads": torch.get_num_threads(),  # CPU results are bit-identical only with the same thread count
        "seconds_per_step": round(seconds / max(result.steps, 1), 4),
        "size": list(result.image.shape[-2:]),
        "loss": result.losses,
        **({"quality": quality} if quality else {}),
        **peak_memory_mb(),
        **result.report,
        **({"files": result.files} if result.files else {}),
        "image": str(png),
    }
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        save_png(result.image, png, text={CONFIG_CHUNK: config_yaml})
        write_text(png.parent / "config.yaml", config_yaml)
        write_json(png.parent / "metrics.json", metrics)
    except OSError as error:
        raise StylefwError(f"could not write the results to {png.parent} ({error.strerror or error}): "
                           "free disk space there or set hydra.run.dir to a writable folder") from None
    if output is not None:
        copy_result(png, output, cfg.overwrite)
        metrics["output"] = str(output)
    return metrics


def copy_result(source: Path, target: Path, overwrite: bool) -> None:
    """Copy the result to the user's path; without overwrite, an existing file there is never replaced."""
    try:
        with atomic_write(target, "wb", replace=overwrite) as stream, open(source, "rb") as data:
            shutil.copyfileobj(data, stream)
    except FileExistsError:
        raise StylefwError(
            f"output={target} appeared while the run was going: it was left untouched; the result is {source}"
        ) from None


def weight_key(term: str) -> str:
    """The config key of a term's weight, from its name in the objective."""
    return "content_loss.weight" if term == "content" else f"loss.{term}.weight"
