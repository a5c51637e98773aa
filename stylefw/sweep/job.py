"""One run as a job of a sweep (`stylefw -m ...`): what it does beyond a single run.

- :func:`run_job`: the run with the job's torch threads set, a failure recorded as a row instead of
  stopping the sweep, and the one number the job returns to the sweeper (stylefw.sweep.objective);
- :func:`job_threads`: torch threads per job, so parallel jobs do not oversubscribe the CPU;
- :func:`record_failed_job`: a job that raised still leaves a metrics.json (status ``failed``).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from stylefw.errors import StylefwError
from stylefw.run import run
from stylefw.runtime.files import write_json
from stylefw.runtime.resources import peak_memory_mb
from stylefw.sweep.objective import check_objective, objective_value


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
