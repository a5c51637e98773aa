"""The `stylefw` console script as a user runs it (subprocesses, tiny offline jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY

NOISE = ("GPU available", "TPU available", "litlogger", "LeafSpec", "eval mode", "wandb:", "Traceback", "Seed set")


def stylefw(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stylefw", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_tiny_run_is_quiet_and_names_its_output(tmp_path: Path) -> None:
    result = stylefw(*TINY, "logger=wandb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Saved ") and last.endswith("astronaut_church_at_auvers.png")
    run_dir = Path(last.removeprefix("Saved ")).parent
    assert run_dir.parent.parent == tmp_path / "outputs"
    assert {"config.yaml", "metrics.json", ".hydra", "wandb"} <= {p.name for p in run_dir.iterdir()}
    for noise in NOISE:
        assert noise not in result.stdout + result.stderr, noise
    assert "stylizing" in result.stderr  # the progress bar


def test_help_lists_every_config_group_and_option(tmp_path: Path) -> None:
    result = stylefw("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in ("backbone: vgg16, vgg19", "loss: gram, hist, shifted_gram, tv", "method: fast, pixel",
                 "optimizer: adam, adam_net, lbfgs, lbfgs_torch", "logger: csv, none, wandb"):
        assert line in result.stdout


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = stylefw(*TINY, "content=missing.jpg", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "stylefw: error: content image 'missing.jpg' not found: give the path of an image file or a bundled name "
        "(astronaut, church_at_auvers)"
    ]


def test_unknown_plugin_lists_the_available_options(tmp_path: Path) -> None:
    result = stylefw("backbone=resnet", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("stylefw: error: unknown backbone 'resnet': choose one of ")
    assert "vgg19" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_multirun_makes_one_run_per_value(tmp_path: Path) -> None:
    result = stylefw("-m", *TINY, "loss.gram.weight=1,100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(p.parent for p in (tmp_path / "outputs" / "multirun").glob("*/*/*/metrics.json"))
    assert len(runs) == 2
    weights = [float((r / "config.yaml").read_text().split("weight: ")[2].split()[0]) for r in runs]
    assert sorted(weights) == [1.0, 100.0]


@pytest.mark.skipif(sys.platform != "linux", reason="signals")
def test_sigterm_saves_the_current_result(tmp_path: Path) -> None:
    import signal
    import time

    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr_file:
        process = subprocess.Popen([sys.executable, "-m", "stylefw", *TINY, "method.steps=100000"], cwd=tmp_path,
                                   stdout=subprocess.DEVNULL, stderr=stderr_file, text=True)
        deadline = time.monotonic() + 120
        while "stylizing" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # let it take some steps
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    stderr = log.read_text()
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "current result saved" in stderr
    assert len(list(tmp_path.glob("outputs/*/*/astronaut_church_at_auvers.png"))) == 1
