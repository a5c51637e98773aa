"""What a run does differently as one job of a sweep (`stylefw -m ...`).

- :func:`objective_value`: the one number the job returns to the sweeper (Optuna minimises it),
  read from its metrics under the ``objective`` config;
- :func:`job_threads`: torch threads per job, so parallel jobs do not oversubscribe the CPU;
- :func:`record_failed_job`: a job that raised still leaves a metrics.json (status ``failed``),
  so the sweep goes on and its summary has a row for it;
- :func:`sweep_identity`: the group, tags and name an experiment logger files the job under.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from stylefw.errors import StylefwError
from stylefw.outputs import write_json
from stylefw.peak_memory import peak_memory_mb

CONTENT_DISTANCE = "quality.content_distance"
_MAX_TAG_LENGTH = 64  # wandb refuses longer tags
_MAX_GROUP_LENGTH = 128  # and longer groups


# --------------------------------------------------------------------------- objective


def lookup(metrics: Mapping[str, Any], dotted_key: str) -> Any:
    """`metrics["quality"]["style_distance"]` for ``quality.style_distance``; None where a part is missing."""
    value: Any = metrics
    for part in dotted_key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def objective_value(metrics: Mapping[str, Any], objective: Mapping[str, Any] | None) -> float | None:
    """The number a sweep minimises for this run; None when the run has no such metric.

    - a completed run within the limit: its ``objective.metric`` (e.g. ``quality.style_distance``);
    - a completed run whose content distance is over ``objective.content_distance_max``:
      ``penalty + (content_distance − content_distance_max)``, so it ranks after every run
      within the limit (when ``penalty`` exceeds any value of the metric) and before a run
      further over it;
    - a failed or interrupted run, or a non-finite metric: ``2 × penalty``.

    A penalty, not a failure, because Optuna's TPE sampler ignores failed trials and would keep
    sampling a region where runs diverge, and Hydra's Optuna sweeper stops the whole study at the
    first failure unless ``max_failure_rate`` allows it.
    """
    if not objective:
        return None
    penalty = float(objective.get("penalty", 10.0))
    if metrics.get("status") != "completed":
        return 2 * penalty
    value = lookup(metrics, str(objective["metric"]))
    if not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return 2 * penalty
    limit = objective.get("content_distance_max")
    distance = lookup(metrics, CONTENT_DISTANCE)
    if limit is not None and isinstance(distance, (int, float)) and distance > limit:
        return penalty + (distance - limit)
    return float(value)


def check_objective(cfg: DictConfig) -> None:
    """Range checks of the ``objective`` keys, before any work."""
    objective = cfg.get("objective")
    if not objective:
        return
    if not str(objective.get("metric") or "").strip():
        raise StylefwError("objective.metric is empty: name a key of metrics.json, e.g. quality.style_distance")
    if not objective.penalty > 0:
        raise StylefwError(f"objective.penalty={objective.penalty} must be a number > 0, above any value of the metric")
    limit = objective.get("content_distance_max")
    if limit is not None and limit < 0:
        raise StylefwError(f"objective.content_distance_max={limit} must be a number >= 0, or null for no limit")
    if limit is not None and not (cfg.get("metrics") and "_target_" in cfg.metrics):
        raise StylefwError("objective.content_distance_max needs the quality metrics: use metrics=default "
                           "or objective.content_distance_max=null")


# --------------------------------------------------------------------------- threads


def available_cores() -> int:
    """CPU cores this process may run on (a cpuset or `taskset` counts, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def job_threads(launcher: Mapping[str, Any] | None, cores: int) -> int | None:
    """Torch threads for one job under `launcher` (its Hydra config), or None to keep torch's default.

    - a launcher that allocates CPUs per job (``cpus_per_task``, submitit): that many;
    - joblib with ``n_jobs=k``: ``max(1, cores // k)``, so k parallel jobs share the cores
      (negative k counts like joblib: -1 is one job per core);
    - anything else (the default launcher runs one job at a time): torch's default.
    """
    if not launcher:
        return None
    cpus_per_task = launcher.get("cpus_per_task")
    if isinstance(cpus_per_task, int) and cpus_per_task > 0:
        return cpus_per_task
    n_jobs = launcher.get("n_jobs")
    if "joblib" in str(launcher.get("_target_", "")).lower() and isinstance(n_jobs, int) and n_jobs != 0:
        parallel_jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // parallel_jobs)
    return None


def set_job_threads(cfg: DictConfig, launcher: Mapping[str, Any] | None) -> None:
    """Fill in ``threads=null`` with :func:`job_threads`; the run's config.yaml then records the count used."""
    if cfg.get("threads") is None:
        threads = job_threads(launcher, available_cores())
        if threads is not None:
            cfg.threads = threads


# --------------------------------------------------------------------------- failed jobs


def record_failed_job(output_dir: Path, error: BaseException, started: float,
                      objective: Mapping[str, Any] | None) -> dict[str, Any]:
    """Write the metrics.json of a job that raised `error` (status ``failed``, its one-line ``error``); returns it."""
    message = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, StylefwError):
        message = f"{type(error).__name__}: {message}"
    metrics: dict[str, Any] = {"status": "failed", "error": message, "steps": 0,
                               "seconds": round(time.perf_counter() - started, 3), **peak_memory_mb()}
    score = objective_value(metrics, objective)
    if score is not None:
        metrics["objective"] = score
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(metrics, output_dir / "metrics.json")
    except OSError:
        pass  # the summary then lists the job as missing its metrics; the error was printed anyway
    return metrics


# --------------------------------------------------------------------------- experiment loggers


@dataclass(frozen=True)
class SweepIdentity:
    """Where an experiment logger files one job: the sweep's group, the job's `key=value` tags, and a name."""

    group: str
    tags: list[str]
    name: str


def sweep_identity() -> SweepIdentity | None:
    """The identity of the current job if it runs in a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

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
