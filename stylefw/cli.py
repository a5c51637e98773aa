"""The `stylefw` command: Hydra composes the config from the plugin registry in conf/, then runs it."""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from stylefw.errors import StylefwError, config_error_message, show_warnings_as_one_line
from stylefw.schema import register_schema

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 3  # the run stopped (e.g. the loss became NaN); its last good image was saved
EXIT_INTERRUPTED = 130
_DEBUG_FLAG = re.compile(r"^\+{0,2}debug=(true|yes|on|1)$", re.IGNORECASE)

register_schema()
_show_tracebacks = False  # HYDRA_FULL_ERROR=1 or debug=true on the command line; set by main()
_in_task = False  # tells an I/O error in Hydra's own set-up (the run folder) from one in a run
_main_pid: int | None = None  # the process that runs main(); a sweep's job may run in another (joblib, submitit)


@hydra.main(version_base="1.3", config_path="pkg://stylefw.conf", config_name="config")
def _task(cfg: DictConfig) -> float | None:
    from stylefw import quiet

    quiet.configure(bool(cfg.verbose))
    from stylefw.run import run
    from stylefw.sweep_job import record_failed_job, set_job_threads

    global _in_task
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    output_dir = Path(hydra_cfg.runtime.output_dir)
    show_tracebacks = _show_tracebacks or bool(cfg.get("debug"))
    if not single_run:
        set_job_threads(cfg, hydra_cfg.launcher)
    _in_task = True
    started = time.perf_counter()
    try:
        metrics = run(cfg, output_dir)
    except Exception as error:
        if not single_run and not show_tracebacks:  # one failed job must not stop the sweep or lose its row
            if not isinstance(error, StylefwError):
                traceback.print_exc()  # a bug, not a user error: show where
            metrics = record_failed_job(output_dir, error, started, cfg.get("objective"))
        elif isinstance(error, StylefwError) and not show_tracebacks:
            _fail(str(error), EXIT_USER_ERROR)
        else:
            raise
    finally:
        _in_task = False
    if metrics["status"] == "failed":
        print(f"stylefw: error: {metrics['error']}", file=sys.stderr)
        if single_run:
            sys.exit(EXIT_RUN_FAILED)
        return metrics.get("objective")
    where = ", ".join([metrics.get("output", metrics["image"]), *metrics.get("files", [])])
    if metrics["status"] == "interrupted":
        print(f"stylefw: interrupted after {metrics['steps']} steps; current result saved to {where}", file=sys.stderr)
        if single_run:
            sys.exit(EXIT_INTERRUPTED)
        if os.getpid() == _main_pid:  # Ctrl-C at the terminal stops the whole sweep, not just this run
            raise KeyboardInterrupt
        return metrics.get("objective")  # a job elsewhere stopped (SLURM's time limit): the sweep goes on
    print(f"Saved {where}")
    if not single_run and metrics.get("objective") is None \
            and "optuna" in str(hydra_cfg.sweeper.get("_target_", "")).lower():
        # Optuna cannot rank a trial without a number, and would stop the study with a traceback.
        metric = OmegaConf.select(cfg, "objective.metric")
        _fail(f"objective.metric={metric} is not a number in this run's metrics.json "
              f"({output_dir / 'metrics.json'}): name one of its keys, e.g. quality.style_distance "
              "(which needs metrics=default)", EXIT_USER_ERROR)
    return metrics.get("objective")  # what a sweeper minimises (README "Sweeps")


def _fail(message: str, code: int) -> NoReturn:
    print(f"stylefw: error: {message}", file=sys.stderr)
    sys.exit(code)


def _setup_error_message(error: BaseException) -> str | None:
    """Hydra could not create the run folder or write its files there (e.g. the current folder is read-only)."""
    if _in_task or not isinstance(error, OSError) or isinstance(error, BrokenPipeError):
        return None
    where = f" '{error.filename}'" if error.filename else ""
    return (f"cannot write the run folder{where} ({error.strerror or error}): run stylefw from a writable folder "
            "or set hydra.run.dir=/writable/folder (hydra.sweep.dir=... with -m)")


def main() -> None:
    global _show_tracebacks, _main_pid
    _main_pid = os.getpid()
    _show_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1" or any(map(_DEBUG_FLAG.match, sys.argv[1:]))
    # Hydra then re-raises its own errors instead of printing them over several lines; they are reported below.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    show_warnings_as_one_line()
    try:
        _task()
    except StylefwError as error:
        if _show_tracebacks:
            raise
        _fail(str(error), EXIT_USER_ERROR)
    except Exception as error:
        message = None if _show_tracebacks else config_error_message(error) or _setup_error_message(error)
        if message is None:
            raise
        _fail(message, EXIT_USER_ERROR)
    except KeyboardInterrupt:  # Ctrl-C before or after the optimisation (during it, the run saves and returns)
        if _show_tracebacks:
            raise
        from stylefw.sweep import report_interrupted_sweep

        if report_interrupted_sweep():
            _fail("sweep interrupted: the runs it made are summarised above", EXIT_INTERRUPTED)
        _fail("interrupted before any result was made", EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
