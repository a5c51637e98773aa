"""Sweeps end to end on tiny images: Optuna, joblib's parallel workers, submitit's local launcher, wandb groups."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import TINY
from stylefw.sweep.job import available_cores
from test_cli import stylefw

# optuna 2.x, which hydra-optuna-sweeper needs, uses SQLAlchemy APIs that 1.4 marks as deprecated on import.
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated API features detected:DeprecationWarning")


def summary_rows(root: Path) -> list[dict[str, str]]:
    (path,) = root.glob("outputs/multirun/*/*/summary.csv")
    with open(path) as stream:
        return list(csv.DictReader(stream))


def recorded_threads(root: Path, row: dict[str, str]) -> int:
    return yaml.safe_load((root / row["folder"] / "config.yaml").read_text())["threads"]


def test_optuna_search_of_two_trials_prints_and_saves_the_best_parameters(stylefw_cli, tmp_path: Path) -> None:
    result = stylefw_cli("-m", *TINY, "hparams_search=pixel_optuna", "hydra.sweeper.n_trials=2", tiny=False)
    assert result.code == 0, result.stderr
    (results_file,) = tmp_path.glob("outputs/multirun/*/*/optimization_results.yaml")
    results = yaml.safe_load(results_file.read_text())
    assert set(results["best_params"]) == {"loss.gram.weight", "content_loss.weight", "loss.tv.weight"}
    rows = summary_rows(tmp_path)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    # The sweeper minimised what the jobs returned: each run's objective as its metrics.json records it.
    assert results["best_value"] == min(float(row["objective"]) for row in rows)
    best_line = next(line for line in result.stdout.splitlines() if line.startswith("Best parameters: "))
    assert "loss.gram.weight=" in best_line and str(results_file.relative_to(tmp_path)) in best_line
    sampled = {row["loss.gram.weight"] for row in rows}
    assert len(sampled) == 2 and all(1e2 <= float(value) <= 1e6 for value in sampled)


def test_optuna_search_of_a_metric_the_runs_lack_is_a_one_line_error(tmp_path: Path) -> None:
    result = stylefw("-m", *TINY, "hparams_search=pixel_optuna", "hydra.sweeper.n_trials=2",
                     "objective.metric=quality.typo", "objective.content_distance_max=null", cwd=tmp_path)
    assert result.returncode == 2
    assert "objective.metric=quality.typo is not a number" in result.stderr and "Traceback" not in result.stderr


def test_joblib_runs_two_jobs_in_parallel_with_the_cores_shared(tmp_path: Path) -> None:
    result = stylefw("-m", *TINY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "style=church_at_auvers,astronaut", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = summary_rows(tmp_path)
    assert [(row["style"], row["status"]) for row in rows] == [("church_at_auvers", "completed"),
                                                              ("astronaut", "completed")]
    assert {recorded_threads(tmp_path, row) for row in rows} == {max(1, available_cores() // 2)}
    assert "Contact sheet: " in result.stdout


def test_submitit_local_launcher_runs_the_unchanged_task_in_other_processes(tmp_path: Path) -> None:
    result = stylefw("-m", *TINY, "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
                     "loss.gram.weight=1,100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = summary_rows(tmp_path)
    assert [(row["loss.gram.weight"], row["status"]) for row in rows] == [("1", "completed"), ("100", "completed")]
    assert all(recorded_threads(tmp_path, row) == 1 for row in rows)
    assert list(tmp_path.glob("outputs/multirun/*/*/.submitit/*/*_result.pkl")), "the jobs ran through submitit"


def test_wandb_runs_of_a_sweep_share_a_group_and_have_their_own_ids(stylefw_cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    started: list[tuple[dict[str, Any], str]] = []
    real_init = wandb.init

    def recording_init(**kwargs: Any) -> Any:
        run = real_init(**kwargs)
        started.append((kwargs, run.id))
        return run

    monkeypatch.setattr(wandb, "init", recording_init)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    result = stylefw_cli("-m", *TINY, "logger=wandb", "loss.gram.weight=1,100", tiny=False)
    assert result.code == 0, result.stderr
    assert len(started) == 2
    (first, first_id), (second, second_id) = started
    assert first_id != second_id
    assert first["group"] == second["group"] and first["group"].startswith("outputs/multirun/")
    assert "loss.gram.weight=1" in first["tags"] and "loss.gram.weight=100" in second["tags"]
    assert "loss=gram+tv" in first["tags"] and "method=pixel" in first["tags"]
    assert first["mode"] == "offline"
    assert len(list(tmp_path.glob("outputs/multirun/*/*/*/wandb/offline-run-*"))) == 2
