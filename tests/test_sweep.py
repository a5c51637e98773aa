"""Sweeps: the summary callback, failed jobs as rows, the objective, threads per job, peak memory per run."""

from __future__ import annotations

import csv
import gc
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from conftest import TINY
from stylefw.errors import StylefwError
from stylefw.runtime.resources import peak_memory_mb, reset_peak_memory
from stylefw.sweep.summary import CONTACT_SHEET, MISSING_METRICS, SUMMARY_CSV, SUMMARY_JSON, SweepSummary, describe, summarize
from stylefw.sweep.job import job_threads
from stylefw.sweep.objective import check_objective, objective_value

OBJECTIVE = {"metric": "quality.style_distance", "content_distance_max": 0.4, "penalty": 10.0}


def completed(style: float, content: float = 0.2, **extra: Any) -> dict[str, Any]:
    metrics = {"status": "completed", "steps": 3, "seconds": 1.5, "loss": {"content": 0.1, "gram": 0.2, "total": 0.3},
               "quality": {"style_distance": style, "content_distance": content}, "peak_rss_mb": 800.0, **extra}
    score = objective_value(metrics, OBJECTIVE)
    return {**metrics, "objective": score}


def make_job(sweep: Path, number: int, overrides: list[str], metrics: dict[str, Any] | None,
             colour: tuple[int, int, int] | None = (90, 120, 200), folder: str | None = None) -> Path:
    """A job folder as Hydra and stylefw leave it: .hydra/{overrides,hydra,config}.yaml, metrics.json, the PNG."""
    job = sweep / (folder or str(number))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": number}}}))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"content": "astronaut", "style": "church_at_auvers"}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if colour is not None:
        Image.new("RGB", (24, 16), colour).save(job / "astronaut_church_at_auvers.png")
    (job / "wandb" / "run").mkdir(parents=True)  # logger folders are not jobs
    return job


@pytest.fixture
def grid_sweep(tmp_path: Path) -> Path:
    """A 2 x 2 sweep (loss x weight) whose job 2 failed and job 3 left no metrics.json."""
    sweep = tmp_path / "multirun" / "12-00-00"
    fixed = ["size=32", "method.steps=3"]
    make_job(sweep, 0, [*fixed, "loss=gram", "loss.gram.weight=1000.0"], completed(0.5))
    make_job(sweep, 1, [*fixed, "loss=gram", "loss.gram.weight=10000.0"], completed(0.3))
    make_job(sweep, 2, [*fixed, "loss=gram+hist", "loss.gram.weight=1000.0"],
             {"status": "failed", "error": "content image 'x.jpg' not found: give ...", "steps": 0, "objective": 20.0},
             colour=None)
    make_job(sweep, 3, [*fixed, "loss=gram+hist", "loss.gram.weight=10000.0"], None)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_summary_has_a_row_per_job_with_its_parameters_metrics_and_status(grid_sweep: Path) -> None:
    summary = summarize(grid_sweep, OBJECTIVE, thumbnail=48)
    with open(grid_sweep / SUMMARY_CSV) as stream:
        rows = list(csv.DictReader(stream))
    assert [row["job"] for row in rows] == ["0", "1", "2", "3"]
    assert [row["status"] for row in rows] == ["completed", "completed", "failed", "missing"]
    assert [row["loss"] for row in rows] == ["gram", "gram", "gram+hist", "gram+hist"]
    assert [row["loss.gram.weight"] for row in rows] == ["1000.0", "10000.0", "1000.0", "10000.0"]
    assert "size" not in rows[0], "a parameter every job shares is not a column of its own"
    assert float(rows[1]["quality.style_distance"]) == 0.3 and float(rows[1]["loss.gram"]) == 0.2
    assert float(rows[0]["peak_rss_mb"]) == 800.0 and float(rows[0]["seconds"]) == 1.5
    assert rows[0]["image"].endswith("0/astronaut_church_at_auvers.png") and rows[2]["image"] == ""
    assert rows[2]["error"].startswith("content image 'x.jpg' not found") and rows[2]["objective"] == "20.0"
    assert rows[3]["error"] == MISSING_METRICS
    assert list(rows[0])[-4:] == ["image", "error", "overrides", "folder"]

    data = json.loads((grid_sweep / SUMMARY_JSON).read_text())
    assert data["swept"] == ["loss", "loss.gram.weight"] and data["fixed"] == ["size=32", "method.steps=3"]
    assert data["best"]["job"] == 1 and data["objective"] == OBJECTIVE
    assert [run["status"] for run in data["runs"]] == [row["status"] for row in rows]
    assert summary.contact_sheet == grid_sweep / CONTACT_SHEET
    with Image.open(grid_sweep / CONTACT_SHEET) as sheet:
        assert sheet.width > 2 * 48 and sheet.height > 2 * 48


def test_the_row_takes_the_image_metrics_json_names_and_every_number_in_it(tmp_path: Path) -> None:
    """A run folder can hold other PNGs (a fast run's stylized photos): the row names the run's own result."""
    sweep = tmp_path / "sweep"
    job = make_job(sweep, 0, ["style=a.jpg"], completed(0.2, threads=2, data={"skipped": 1},
                                                          image="/elsewhere/0/overview_a.png"))
    Image.new("RGB", (8, 8)).save(job / "overview_a.png")  # after astronaut_... in alphabetical order
    summarize(sweep, OBJECTIVE, thumbnail=32)
    with open(sweep / SUMMARY_CSV) as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["image"] == str(job / "overview_a.png")
    assert row["threads"] == "2" and row["data.skipped"] == "1"


def test_jobs_are_in_job_number_order_not_folder_name_order(tmp_path: Path) -> None:
    for number in range(12):
        make_job(tmp_path, number, [f"seed={number}"], completed(0.5 + number / 100), colour=None)
    rows = summarize(tmp_path, contact_sheet=False).rows
    assert [row["job"] for row in rows] == list(range(12))
    assert not (tmp_path / CONTACT_SHEET).exists()


def test_damaged_job_files_give_a_row_not_a_crash(tmp_path: Path) -> None:
    job = make_job(tmp_path, 0, ["seed=0"], None)
    (job / "metrics.json").write_text("{ truncated")
    (job / ".hydra" / "overrides.yaml").write_text("- [unclosed")
    (job / ".hydra" / "hydra.yaml").write_text(":::")
    make_job(tmp_path, 1, ["seed=1"], completed(0.4))
    rows = summarize(tmp_path, thumbnail=32).rows
    assert [row["status"] for row in rows] == ["missing", "completed"]  # job 0 numbered by its folder's name


def test_callback_reports_a_summary_problem_as_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "never_created")}}})
    SweepSummary().on_multirun_end(config)
    assert "stylefw: warning: could not summarise the sweep" in capsys.readouterr().err


def test_the_console_names_the_files_the_best_run_and_optunas_best_parameters(grid_sweep: Path) -> None:
    (grid_sweep / "optimization_results.yaml").write_text(yaml.safe_dump(
        {"name": "optuna", "best_params": {"loss.gram.weight": 1234.5}, "best_value": 0.3}))
    lines = describe(summarize(grid_sweep, OBJECTIVE, thumbnail=32))
    assert lines[0] == f"Sweep of 4 runs (2 completed, 1 failed, 1 missing): {grid_sweep / SUMMARY_CSV}"
    assert lines[1] == f"Contact sheet: {grid_sweep / CONTACT_SHEET}"
    assert lines[2].startswith("Best run: loss=gram loss.gram.weight=1e4 (objective 0.3): ")
    assert lines[3].startswith("Best parameters: loss.gram.weight=1234.5 (objective 0.3; ")


# --------------------------------------------------------------------------- the objective


def test_objective_ranks_runs_within_the_limit_then_over_it_then_failed() -> None:
    good, better = completed(0.5), completed(0.3)
    slightly_over, far_over = completed(0.1, content=0.45), completed(0.1, content=0.9)
    failed = {"status": "failed", "error": "x"}
    interrupted = {**completed(0.1), "status": "interrupted"}
    scores = [objective_value(m, OBJECTIVE) for m in (better, good, slightly_over, far_over, failed)]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert scores[:2] == [0.3, 0.5]
    assert scores[2] == pytest.approx(10.05) and scores[4] == 20.0
    assert objective_value(interrupted, OBJECTIVE) == 20.0


def test_objective_without_a_limit_is_the_metric_and_missing_metrics_give_none() -> None:
    no_limit = {**OBJECTIVE, "content_distance_max": None}
    assert objective_value(completed(0.1, content=1.5), no_limit) == 0.1
    assert objective_value(completed(0.1), {**no_limit, "metric": "loss.total"}) == 0.3
    assert objective_value(completed(0.1), {**no_limit, "metric": "quality.nope"}) is None
    assert objective_value(completed(math.nan), no_limit) == 20.0
    assert objective_value(completed(0.1), None) is None


@pytest.mark.parametrize("override, message", [
    ("objective.penalty=0", "objective.penalty=0.0 must be a positive number"),
    ("objective.content_distance_max=-1", "objective.content_distance_max=-1.0 must be a number >= 0"),
    ("objective.metric=''", "objective.metric is empty"),
])
def test_bad_objective_settings_are_refused_before_any_work(compose_cfg, override: str, message: str) -> None:
    with pytest.raises(StylefwError, match="^" + message.replace(".", r"\.")):
        check_objective(compose_cfg(override))


def test_a_content_limit_needs_the_quality_metrics(compose_cfg) -> None:
    check_objective(compose_cfg("objective.content_distance_max=0.4", tiny=False))
    with pytest.raises(StylefwError, match="needs the quality metrics: use metrics=default"):
        check_objective(compose_cfg("objective.content_distance_max=0.4", "metrics=none", tiny=False))


# --------------------------------------------------------------------------- threads and memory


@pytest.mark.parametrize("launcher, cores, threads", [
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 2, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 16, 8),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 3}, 2, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, 8, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -2}, 8, 1),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "cpus_per_task": 6}, 64, 6),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "cpus_per_task": None},
     8, None),
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, None),
])
def test_threads_per_job_share_the_cores_between_parallel_jobs(launcher: dict, cores: int,
                                                                threads: int | None) -> None:
    assert job_threads(launcher, cores) == threads


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only")
def test_peak_memory_is_this_runs_not_the_processes() -> None:
    # Earlier tests' garbage, collected mid-test, could lower the resident size under the block.
    gc.collect()
    gc.disable()
    try:
        assert reset_peak_memory()
        before = peak_memory_mb()["peak_rss_mb"]
        block = np.ones(200 * 2**20 // 8)  # 200 MB, touched
        del block
        after_big_job = peak_memory_mb()["peak_rss_mb"]
        assert after_big_job > before + 150
        reset_peak_memory()  # the next job of this worker process starts
        assert peak_memory_mb()["peak_rss_mb"] < after_big_job - 150
    finally:
        gc.enable()


# --------------------------------------------------------------------------- real sweeps (tiny)


def read_summary(root: Path) -> list[dict[str, str]]:
    (path,) = root.glob("outputs/multirun/*/*/summary.csv")
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_a_failing_job_is_a_row_and_the_sweep_goes_on(stylefw_cli, tmp_path: Path) -> None:
    result = stylefw_cli("-m", *TINY, "content=missing.jpg,astronaut", tiny=False)
    assert result.code == 0, result.stderr
    assert "stylefw: error: content image 'missing.jpg' not found" in result.stderr
    assert "Sweep of 2 runs (1 failed, 1 completed)" in result.stdout
    rows = read_summary(tmp_path)
    assert [(row["content"], row["status"]) for row in rows] == [("missing.jpg", "failed"), ("astronaut", "completed")]
    assert rows[0]["error"].startswith("content image 'missing.jpg' not found: give the path")
    assert float(rows[0]["objective"]) == 20.0 and float(rows[1]["objective"]) < 10
    assert rows[1]["image"].endswith("astronaut_church_at_auvers.png")
    failed_metrics = json.loads((Path(rows[0]["folder"]) / "metrics.json").read_text())
    assert failed_metrics["status"] == "failed" and failed_metrics["peak_rss_mb"] > 0
    assert len(list(tmp_path.glob("outputs/multirun/*/*/contact_sheet.png"))) == 1


def test_a_bug_in_one_job_is_recorded_with_its_traceback(stylefw_cli, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.sweep.job

    real_run = stylefw.sweep.job.run

    def run_with_a_bug(cfg: Any, output_dir: Path) -> dict[str, Any]:
        if cfg.seed == 1:
            raise RuntimeError("boom\nsecond line")
        return real_run(cfg, output_dir)

    monkeypatch.setattr(stylefw.sweep.job, "run", run_with_a_bug)
    result = stylefw_cli("-m", *TINY, "seed=1,2", tiny=False)
    assert result.code == 0, result.stderr
    assert "Traceback" in result.stderr and "stylefw: error: RuntimeError: boom second line" in result.stderr
    assert [row["status"] for row in read_summary(tmp_path)] == ["failed", "completed"]


def test_ctrl_c_stops_the_whole_sweep_and_summarises_the_runs_it_made(stylefw_cli, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.sweep.job

    def interrupted_run(cfg: Any, output_dir: Path) -> dict[str, Any]:
        metrics = {"status": "interrupted", "steps": 1}
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics))
        return {**metrics, "image": str(output_dir / "result.png")}

    monkeypatch.setattr(stylefw.sweep.job, "run", interrupted_run)
    result = stylefw_cli("-m", *TINY, "seed=1,2,3", tiny=False)
    assert result.code == 130
    assert result.stderr.strip().splitlines()[-1] == "stylefw: error: sweep interrupted: the runs it made are " \
                                                      "summarised above"
    assert "Sweep of 1 run (1 interrupted): " in result.stdout
    (row,) = read_summary(tmp_path)
    assert row["status"] == "interrupted" and row["overrides"].endswith(" seed=1")

