"""The `stylefw` command: Hydra composes the config from the plugin registry in conf/, then runs it.

A single run goes straight to :func:`stylefw.run.run`. A multirun (``-m``) takes the sweep branch: each
job runs through :func:`stylefw.sweep.job.run_job` and the summary callback is added to Hydra's config;
a single run imports no sweep module.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from stylefw.errors import StylefwError, config_error_message, show_warnings_as_one_line
from stylefw.schema import register_schema

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 3  # the run stopped (e.g. the loss became NaN); its last good image was saved
EXIT_INTERRUPTED = 130
_DEBUG_FLAG = re.compile(r"^\+{0,2}debug=(true|yes|on|1)$", re.IGNORECASE)
_MULTIRUN_FLAGS = ("-m", "--multirun")

register_schema()
_show_tracebacks = False  # HYDRA_FULL_ERROR=1 or debug=true on the command line; set by main()
_in_task = False  # tells an I/O error in Hydra's own set-up (the run folder) from one in a run
_main_pid: int | None = None  # the process that runs main(); a sweep's job may run in another (joblib, submitit)


@hydra.main(version_base="1.3", config_path="pkg://stylefw.conf", config_name="config")
def _task(cfg: DictConfig) -> float | None:
    from stylefw.runtime.lightning import configure_quiet

    configure_quiet(bool(cfg.verbose))
    global _in_task
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    show_tracebacks = _show_tracebacks or bool(cfg.get("debug"))
    _in_task = True
    try:
        if hydra_cfg.mode == RunMode.RUN:
            _single_run(cfg, output_dir, show_tracebacks)
            return None
        return _sweep_job(cfg, output_dir, hydra_cfg, show_tracebacks)
    finally:
        _in_task = False


def _single_run(cfg: DictConfig, output_dir: Path, show_tracebacks: bool) -> None:
    from stylefw.run import run

    try:
        metrics = run(cfg, output_dir)
    except StylefwError as error:
        if show_tracebacks:
            raise
        _fail(str(error), EXIT_USER_ERROR)
    _announce(metrics)
    if metrics["status"] == "failed":
        sys.exit(EXIT_RUN_FAILED)
    if metrics["status"] == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


def _sweep_job(cfg: DictConfig, output_dir: Path, hydra_cfg: Any, show_tracebacks: bool) -> float | None:
    """One job of a sweep; returns what the sweeper minimises (docs/sweeps.md, "The objective")."""
    from stylefw.sweep.job import run_job

    try:
        metrics, objective = run_job(cfg, output_dir, hydra_cfg.launcher, hydra_cfg.sweeper, show_tracebacks)
    except StylefwError as error:
        if show_tracebacks:
            raise
        _fail(str(error), EXIT_USER_ERROR)
    _announce(metrics)
    if metrics["status"] == "interrupted" and os.getpid() == _main_pid:
        raise KeyboardInterrupt  # Ctrl-C at the terminal stops the whole sweep; a job elsewhere (SLURM's limit) not
    return objective


def _announce(metrics: dict[str, Any]) -> None:
    """The run's last line: where its result is, or why it failed."""
    if metrics["status"] == "failed":
        print(f"stylefw: error: {metrics['error']}", file=sys.stderr)
        return
    where = ", ".join([metrics.get("output", metrics["image"]), *metrics.get("files", [])])
    if metrics["status"] == "interrupted":
        print(f"stylefw: interrupted after {metrics['steps']} steps; current result saved to {where}", file=sys.stderr)
    else:
        print(f"Saved {where}")


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


def _sweep_arguments(arguments: list[str]) -> list[str] | None:
    """The command line with the sweep summary's override added, for a multirun; None for a single run.

    argparse takes Hydra's overrides as one run of positional arguments, so the added one goes next
    to the user's (before the first), not after an option such as ``--cfg job``.
    """
    from hydra._internal.utils import get_args_parser

    from stylefw.sweep.summary import HYDRA_OVERRIDE

    parsed, _ = get_args_parser().parse_known_args(arguments)
    if not parsed.multirun and "hydra.mode=MULTIRUN" not in parsed.overrides:
        return None
    at = arguments.index(parsed.overrides[0]) if parsed.overrides else len(arguments)
    return [*arguments[:at], HYDRA_OVERRIDE, *arguments[at:]]


def main() -> None:
    global _show_tracebacks, _main_pid
    _main_pid = os.getpid()
    _show_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1" or any(map(_DEBUG_FLAG.match, sys.argv[1:]))
    # Hydra then re-raises its own errors instead of printing them over several lines; they are reported below.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    show_warnings_as_one_line()
    sweep = _sweep_arguments(sys.argv[1:]) if any(argument in _MULTIRUN_FLAGS or argument.startswith("hydra.mode=")
                                                   for argument in sys.argv[1:]) else None
    if sweep is not None:
        sys.argv[1:] = sweep
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
        if sweep is not None:
            from stylefw.sweep.summary import report_interrupted_sweep

            if report_interrupted_sweep():
                _fail("sweep interrupted: the runs it made are summarised above", EXIT_INTERRUPTED)
        _fail("interrupted before any result was made", EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
