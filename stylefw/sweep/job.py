"""One run as a job of a sweep (`stylefw -m ...`): what it does beyond a single run.

- :func:`run_job`: the run with the job's torch threads set, a failure recorded as a row instead of
  stopping the sweep, and the one number the job returns to the sweeper;
- :func:`objective_value`: that number, read from the run's metrics under the ``objective`` config;
- :func:`job_threads`: torch threads per job, so parallel jobs do not oversubscribe the CPU;
- :func:`record_failed_job`: a job that raised still leaves a metrics.json (status ``failed``).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from stylefw.errors import StylefwError, check_number
from stylefw.run import run
from stylefw.runtime.files import write_json
from stylefw.runtime.resources import peak_memory_mb

CONTENT_DISTANCE = "quality.content_distance"


def run_job(cfg: DictConfig, output_dir: Path, launcher: Mapping[str, Any] | None,
            sweeper: Mapping[str, Any] | None, show_tracebacks: bool) -> tuple[dict[str, Any], float | None]:
    """Run one job; returns its metrics and its objective (None when the run has no such metric).

    A job that raises is recorded as failed (a bug also prints its traceback) and the sweep goes on; with
    `show_tracebacks` (``debug=true``) the error stops the sweep instead. A completed run whose objective
    metric is not a number stops a sweeper that searches on the values (Optuna), which could not rank it.
    """
    set_job_threads(cfg, launcher)
    started = time.perf_counter()
    try:
        check_objective(cfg)
        metrics = run(cfg, output_dir)
    except Exception as error:
        if show_tracebacks:
            raise
        if not isinstance(error, StylefwError):
            traceback.print_exc()  # a bug, not a user error: show where
        metrics = record_failed_job(output_dir, error, started)
    objective = objective_value(metrics, cfg.get("objective"))
    if objective is None and metrics["status"] == "completed" and searches_on_values(sweeper):
        raise StylefwError(f"objective.metric={cfg.objective.metric} is not a number in this run's metrics.json "
                           f"({output_dir / 'metrics.json'}): name one of its keys, e.g. quality.style_distance "
                           "(which needs metrics=default)")
    return metrics, objective


def searches_on_values(sweeper: Mapping[str, Any] | None) -> bool:
    """Whether the sweeper chooses its next trials from the values the jobs return: a search has a `direction`
    to optimise in (Optuna's), Hydra's basic sweeper only runs the grid it was given."""
    return bool(sweeper) and "direction" in sweeper


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
    check_number("objective.penalty", objective.penalty, above=0, hint="above any value of the metric")
    limit = check_number("objective.content_distance_max", objective.get("content_distance_max"), least=0,
                         optional=True, hint="null: no limit")
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
    - a launcher that runs ``n_jobs=k`` jobs at once (joblib): ``max(1, cores // k)``, so k parallel
      jobs share the cores (negative k counts like joblib: -1 is one job per core);
    - anything else (the default launcher runs one job at a time): torch's default.
    """
    if not launcher:
        return None
    cpus_per_task = launcher.get("cpus_per_task")
    if isinstance(cpus_per_task, int) and cpus_per_task > 0:
        return cpus_per_task
    n_jobs = launcher.get("n_jobs")
    if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs != 0:
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


def record_failed_job(output_dir: Path, error: BaseException, started: float) -> dict[str, Any]:
    """Write the metrics.json of a job that raised `error` (status ``failed``, its one-line ``error``); returns it."""
    message = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, StylefwError):
        message = f"{type(error).__name__}: {message}"
    metrics: dict[str, Any] = {"status": "failed", "error": message, "steps": 0,
                               "seconds": round(time.perf_counter() - started, 3), **peak_memory_mb()}
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / "metrics.json", metrics)
    except OSError:
        pass  # the summary then lists the job as missing its metrics; the error was printed anyway
    return metrics
