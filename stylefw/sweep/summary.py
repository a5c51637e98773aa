"""After a sweep (`stylefw -m ...`): summary.csv, summary.json and contact_sheet.png in its folder.

:class:`SweepSummary` is a Hydra callback, which the command adds under ``hydra.callbacks`` for a
multirun only. When the multirun ends it reads what every job left in the sweep folder,
``.hydra/overrides.yaml``, ``.hydra/config.yaml`` and ``metrics.json``, so it works the same
whatever launcher ran the jobs (in this process, joblib's workers, submitit on a SLURM
cluster): it needs only the shared folder. A job that left no metrics.json (killed, out of
memory, out of time) is a row with status ``missing``; nothing a job left, or failed to
leave, stops the summary.

Columns: ``job``, ``status``, the swept parameters as written on the command line, the
``objective`` (:func:`~stylefw.sweep.objective.objective_value` of the job's metrics), every number of metrics.json under its dotted key (``quality.style_distance``,
``loss.gram``, ``seconds``, ``peak_rss_mb``, ...), ``image``, ``error``, ``overrides``, ``folder``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from stylefw.errors import StylefwError
from stylefw.image.io import resolve_image_path
from stylefw.runtime.files import write_text
from stylefw.sweep.contact_sheet import SheetRun, readable_value, write_contact_sheet
from stylefw.sweep.objective import objective_value

SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
CONTACT_SHEET = "contact_sheet.png"
OPTUNA_RESULTS = "optimization_results.yaml"  # written by hydra-optuna-sweeper
MISSING_METRICS = "no metrics.json: the job did not finish (killed, out of memory or out of time?)"
_SKIPPED_FOLDERS = ("wandb", "csv")
_METRIC_COLUMNS = ("objective", "quality", "loss", "steps", "seconds", "seconds_per_step", "peak_rss_mb",
                   "peak_gpu_mb")
_TEXT_COLUMNS = ("image", "error", "overrides", "folder")
_MAX_REFERENCES = 6


@dataclass
class Job:
    """What one job left in its folder."""

    folder: Path
    number: int | None
    overrides: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    image: Path | None

    @property
    def values(self) -> dict[str, str]:
        """Its overrides as key -> value as written (``loss.gram.weight`` -> ``1e3``)."""
        return dict(split_override(override) for override in self.overrides)

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown")) if self.metrics is not None else "missing"


def split_override(override: str) -> tuple[str, str]:
    """``('loss.gram.weight', '1e3')`` for ``loss.gram.weight=1e3`` (also ``+key=value``, ``++key=value``)."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


# --------------------------------------------------------------------------- reading the sweep folder


def find_job_folders(sweep_dir: Path) -> list[Path]:
    """Folders under `sweep_dir` holding a job's metrics.json or Hydra's record of it; logger folders skipped."""
    found = []
    for folder, subfolders, files in os.walk(sweep_dir):
        if "metrics.json" in files or os.path.isfile(os.path.join(folder, ".hydra", "overrides.yaml")):
            found.append(Path(folder))
            subfolders.clear()
            continue
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".") and name not in _SKIPPED_FOLDERS)
    return found


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _job_number(folder: Path) -> int | None:
    hydra_cfg = _read_yaml(folder / ".hydra" / "hydra.yaml")
    number = hydra_cfg.get("hydra", {}).get("job", {}).get("num") if isinstance(hydra_cfg, dict) else None
    if isinstance(number, int):
        return number
    return int(folder.name) if folder.name.isdigit() else None


def read_job(folder: Path) -> Job:
    overrides = _read_yaml(folder / ".hydra" / "overrides.yaml")
    config = _read_yaml(folder / ".hydra" / "config.yaml")
    metrics = _read_json(folder / "metrics.json")
    named = folder / Path(str(metrics["image"])).name if metrics and metrics.get("image") else None
    images = [named] if named is not None and named.is_file() else sorted(folder.glob("*.png"))
    return Job(folder=folder, number=_job_number(folder),
               overrides=[str(item) for item in overrides] if isinstance(overrides, list) else [],
               config=config if isinstance(config, dict) else {},
               metrics=metrics, image=images[0] if images else None)


def collect_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep, in job-number order (folders without a number last, by name)."""
    jobs = [read_job(folder) for folder in find_job_folders(sweep_dir)]
    return sorted(jobs, key=lambda job: (job.number is None, job.number or 0, str(job.folder)))


def swept_and_fixed(jobs: Sequence[Job]) -> tuple[list[str], list[str]]:
    """The keys whose values differ between jobs (command-line order), and the ``key=value`` all jobs share."""
    keys = list(dict.fromkeys(key for job in jobs for key, _ in map(split_override, job.overrides)))
    swept, fixed = [], []
    for key in keys:
        values = {job.values.get(key) for job in jobs}
        if len(values) > 1:
            swept.append(key)
        else:
            fixed.append(f"{key}={values.pop()}")
    return swept, fixed


# --------------------------------------------------------------------------- the summary


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numbers of nested `metrics` under dotted keys: ``{"loss": {"gram": 1.0}}`` -> ``{"loss.gram": 1.0}``."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def summary_row(job: Job, swept: Sequence[str], objective: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job's row; its objective is computed under the job's own ``objective`` config, else `objective`."""
    metrics = dict(job.metrics or {})
    if job.metrics is not None:
        score = objective_value(metrics, job.config.get("objective") or objective)
        if score is not None:
            metrics["objective"] = score
    values = job.values
    numbers = {**flatten({key: metrics[key] for key in _METRIC_COLUMNS if key in metrics}),  # these first
               **flatten({key: value for key, value in metrics.items() if key not in _METRIC_COLUMNS})}
    error = metrics.get("error", "") if job.metrics is not None else MISSING_METRICS
    return {"job": job.number, "status": job.status, **{key: values.get(key, "") for key in swept},
            **numbers, "image": str(job.image) if job.image else "", "error": error,
            "overrides": " ".join(job.overrides), "folder": str(job.folder)}


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The completed run with the lowest objective, or None."""
    scored = [row for row in rows if row["status"] == "completed" and isinstance(row.get("objective"), (int, float))]
    return min(scored, key=lambda row: row["objective"]) if scored else None


def column_order(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column of `rows`: first as the first row has them, the long text ones (image, error, ...) last."""
    names = list(dict.fromkeys(column for row in rows for column in row))
    return [name for name in names if name not in _TEXT_COLUMNS] + [name for name in _TEXT_COLUMNS if name in names]


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=column_order(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return stream.getvalue()


@dataclass
class Summary:
    """What :func:`summarize` wrote and found."""

    sweep_dir: Path
    rows: list[dict[str, Any]]
    swept: list[str]
    best: Mapping[str, Any] | None
    optuna: dict[str, Any] | None
    contact_sheet: Path | None


def summarize(sweep_dir: Path, objective: Mapping[str, Any] | None = None, thumbnail: int = 192,
              contact_sheet: bool = True) -> Summary:
    """Write summary.csv, summary.json and (unless told not to) contact_sheet.png into `sweep_dir`."""
    jobs = collect_jobs(sweep_dir)
    swept, fixed = swept_and_fixed(jobs)
    rows = [summary_row(job, swept, objective) for job in jobs]
    best = best_row(rows)
    optuna = _read_yaml(sweep_dir / OPTUNA_RESULTS)
    optuna = optuna if isinstance(optuna, dict) else None
    write_text(sweep_dir / SUMMARY_CSV, csv_text(rows) if rows else "job,status\n")
    write_text(sweep_dir / SUMMARY_JSON, json.dumps(
        {"sweep_dir": str(sweep_dir), "swept": swept, "fixed": fixed, "objective": dict(objective or {}),
         "best": best, "optuna": optuna, "runs": rows}, indent=2, default=str) + "\n")
    sheet = None
    if contact_sheet and jobs:
        try:
            sheet = _write_sheet(sweep_dir, jobs, rows, swept, fixed, best, thumbnail)
        except Exception as error:  # the tables are written; a drawing problem must not hide them
            print(f"stylefw: warning: could not draw {CONTACT_SHEET}: {type(error).__name__}: {error}", file=sys.stderr)
    return Summary(sweep_dir, rows, swept, best, optuna, sheet)


def _write_sheet(sweep_dir: Path, jobs: Sequence[Job], rows: Sequence[Mapping[str, Any]], swept: list[str],
                 fixed: list[str], best: Mapping[str, Any] | None, thumbnail: int) -> Path:
    runs = [SheetRun(values={key: job.values.get(key, "") for key in swept}, image=job.image,
                     caption=_caption(row, row is best), failed=row["status"] != "completed", best=row is best)
            for job, row in zip(jobs, rows)]
    title = [f"stylefw sweep {sweep_dir}", runs_and_states(rows),
             *([f"all runs: {' '.join(fixed)}"] if fixed else []),
             "style / content: quality.style_distance / quality.content_distance (lower is better)"]
    return write_contact_sheet(sweep_dir / CONTACT_SHEET, runs, swept, reference_images(jobs), title, thumbnail)


def _caption(row: Mapping[str, Any], best: bool) -> list[str]:
    if row["status"] != "completed":
        return [f"{row['status']}: {row['error']}" if row["error"] else row["status"]]
    lines = []
    style, content = row.get("quality.style_distance"), row.get("quality.content_distance")
    if style is not None and content is not None:
        lines.append(f"style {style:.3f} · content {content:.3f}")
    seconds = row.get("seconds")
    lines.append(" · ".join(part for part in (f"{seconds:.1f} s" if seconds is not None else "",
                                              "best objective" if best else "") if part))
    return [line for line in lines if line]


def reference_images(jobs: Sequence[Job]) -> list[tuple[str, Path]]:
    """The distinct content and style images of the jobs, labelled, for the head of the contact sheet."""
    specs: dict[tuple[str, str], None] = {}
    for role in ("content", "style"):
        for job in jobs:
            value = job.config.get(role)
            for spec in value if isinstance(value, list) else [value]:
                if spec is not None:
                    specs[(role, str(spec))] = None
    references = []
    for role, spec in list(specs)[:_MAX_REFERENCES]:
        try:
            references.append((f"{role}: {Path(spec).stem}", resolve_image_path(spec, role)))
        except StylefwError:
            continue
    return references


# --------------------------------------------------------------------------- the console and the callback


def runs_and_states(rows: Sequence[Mapping[str, Any]]) -> str:
    """``6 runs (5 completed, 1 failed)``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    states = ", ".join(f"{count} {status}" for status, count in counts.items())
    return f"{len(rows)} run{'' if len(rows) == 1 else 's'} ({states})"


def describe(summary: Summary) -> list[str]:
    """The lines printed when a sweep ends: where the summary is, the best run, Optuna's best parameters."""
    lines = [f"Sweep of {runs_and_states(summary.rows)}: {summary.sweep_dir / SUMMARY_CSV}"]
    if summary.contact_sheet is not None:
        lines.append(f"Contact sheet: {summary.contact_sheet}")
    if summary.best is not None:
        best = summary.best
        values = " ".join(f"{key}={readable_value(best[key])}" for key in summary.swept) or f"job {best['job']}"
        lines.append(f"Best run: {values} (objective {best['objective']:.4g}): {best['image'] or best['folder']}")
    if summary.optuna and "best_params" in summary.optuna:
        params = " ".join(f"{key}={value}" for key, value in summary.optuna["best_params"].items())
        lines.append(f"Best parameters: {params} (objective {summary.optuna.get('best_value')}; "
                     f"{summary.sweep_dir / OPTUNA_RESULTS})")
    return lines


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, summarise its runs in the sweep folder and print where."""

    running: SweepSummary | None = None  # the callback of the multirun going on in this process, if any

    def __init__(self, thumbnail: int = 192, contact_sheet: bool = True) -> None:
        self.thumbnail = thumbnail
        self.contact_sheet = contact_sheet
        self.config: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.config = config
        SweepSummary.running = self

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        SweepSummary.running = None
        self.report(config)

    def report(self, config: DictConfig) -> None:
        """Summarise the sweep of `config` and print where; any problem is a one-line warning."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        objective = config.get("objective")
        try:
            objective = OmegaConf.to_container(objective, resolve=True) if objective is not None else None
            summary = summarize(sweep_dir, objective, self.thumbnail, self.contact_sheet)
        except Exception as error:  # the runs are done and saved: a summary problem must not turn into a failure
            print(f"stylefw: warning: could not summarise the sweep in {sweep_dir}: {type(error).__name__}: {error}",
                  file=sys.stderr)
            return
        print("\n".join(describe(summary)), flush=True)


def report_interrupted_sweep() -> bool:
    """After Ctrl-C stopped a sweep in this process: summarise the runs it made; False if no sweep was going on."""
    callback = SweepSummary.running
    SweepSummary.running = None
    if callback is None or callback.config is None:
        return False
    callback.report(callback.config)
    return True


# The override the command adds to a multirun (and only to a multirun): Hydra then calls SweepSummary at its end.
HYDRA_OVERRIDE = f"++hydra.callbacks.sweep_summary._target_={__name__}.{SweepSummary.__name__}"
