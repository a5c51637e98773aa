"""Faults during a run: a loss that blows up, a crash while writing, two runs at once. Nothing the user made is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import TINY
from stylefw.runtime.files import atomic_write, write_text
from stylefw.image.io import load_image, save_png
from stylefw.objective.terms import LossTerm
from stylefw.run import run


class BlowsUpAfter(LossTerm):
    """A test term: a small finite value for `after` evaluations, then `value` (NaN or inf)."""

    def __init__(self, weight: float = 1.0, after: int = 3, value: float = float("nan")) -> None:
        super().__init__(weight)
        self.after, self.value, self.calls = after, value, 0

    def forward(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        bad = self.calls > self.after
        return self.weight * (image.mean() * 0 + (self.value if bad else 0.5))


def blows_up(after: int, value: str = "nan") -> str:
    return f"+loss.boom={{_target_:test_faults.BlowsUpAfter,after:{after},value:{value}}}"


@pytest.mark.parametrize(("value", "kind"), [("nan", "NaN"), ("inf", "infinite")])
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_image(compose_cfg, tmp_path: Path, value: str,
                                                                      kind: str) -> None:
    metrics = run(compose_cfg("method.steps=20", "method.init=noise", blows_up(4, value)), tmp_path)
    assert metrics["status"] == "failed" and metrics["steps"] == 3 and metrics["failed_terms"] == ["boom"]
    assert metrics["error"] == (f"loss term 'boom' became {kind} at step 5: lower loss.boom.weight or optimizer.lr "
                                f"(last good image saved to {tmp_path / 'astronaut_church_at_auvers.png'})")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == metrics["error"]
    assert all(torch.isfinite(torch.tensor(v)) for v in saved["loss"].values()) and saved["loss"]["boom"] == 0.5
    image = load_image(metrics["image"], None)
    assert image.std() > 0.05  # the optimised image, not a black or blank one


def test_last_good_image_is_the_one_before_the_blow_up(compose_cfg, tmp_path: Path) -> None:
    """Blowing up at the 5th evaluation keeps the image the 4th evaluated: that of a clean 3-step run."""
    clean = run(compose_cfg("method.steps=3", "method.init=noise"), tmp_path / "clean")
    failed = run(compose_cfg("method.steps=10", "method.init=noise", blows_up(4)), tmp_path / "failed")
    assert failed["status"] == "failed" and failed["steps"] == 3 and "at step 5" in failed["error"]
    assert torch.allclose(load_image(failed["image"], None), load_image(clean["image"], None), atol=1 / 255)


def test_blow_up_at_the_first_step_keeps_the_initial_image(compose_cfg, tmp_path: Path) -> None:
    metrics = run(compose_cfg("method.steps=5", "method.init=content", blows_up(0)), tmp_path)
    assert metrics["status"] == "failed" and metrics["steps"] == 0 and "at step 1" in metrics["error"]
    content = load_image("astronaut", 32)
    assert torch.allclose(load_image(metrics["image"], None), content, atol=1 / 255)


def test_failed_run_is_not_copied_to_output(compose_cfg, tmp_path: Path) -> None:
    target = tmp_path / "mine.png"
    metrics = run(compose_cfg(f"output={target}", blows_up(1)), tmp_path / "run")
    assert metrics["status"] == "failed" and not target.exists() and Path(metrics["image"]).is_file()


def test_cli_reports_the_blow_up_in_one_line_and_exits_3(stylefw_cli, tmp_path: Path) -> None:
    result = stylefw_cli("method.steps=20", blows_up(2))
    assert result.code == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("stylefw: error:")]
    assert len(errors) == 1 and "loss term 'boom' became NaN at step 3: lower loss.boom.weight" in errors[0]
    assert "Traceback" not in result.stderr and "Saved" not in result.stdout
    png = tmp_path / errors[0].rsplit("saved to ", 1)[1].rstrip(")")
    assert png.is_file() and json.loads(png.with_name("metrics.json").read_text())["status"] == "failed"


# --- writes are atomic: a crash mid-write leaves the old file or nothing, never half a file ---------------------------

class Crash(Exception):
    pass


def test_crash_mid_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write_text(path, "size: 1\n")
    with pytest.raises(Crash), atomic_write(path, "w") as stream:
        stream.write("size: 2\nhalf a fi")
        raise Crash
    assert path.read_text() == "size: 1\n" and os.listdir(tmp_path) == ["config.yaml"]


def test_crash_mid_png_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Image.Image.save

    def save_half_then_crash(self, fp, *args, **kwargs):
        original(self, fp, *args, **kwargs)
        fp.truncate(20)
        raise Crash

    monkeypatch.setattr(Image.Image, "save", save_half_then_crash)
    with pytest.raises(Crash):
        save_png(torch.rand(1, 3, 8, 8), tmp_path / "result.png")
    assert os.listdir(tmp_path) == []


def test_run_outputs_are_written_atomically_with_normal_permissions(compose_cfg, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.runtime.files

    metrics = run(compose_cfg("method.steps=1"), tmp_path)
    for name in ("astronaut_church_at_auvers.png", "config.yaml", "metrics.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~stylefw.runtime.files._UMASK, name
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != ".hydra"}

    def fsync_fails(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stylefw.runtime.files.os, "fsync", fsync_fails)
    from stylefw.errors import StylefwError

    with pytest.raises(StylefwError, match=r"could not write the results to .* \(No space left on device\)"):
        run(compose_cfg("method.steps=1", "seed=3", "method.init=noise"), tmp_path)
    after = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != ".hydra"}
    assert after == before and metrics["status"] == "completed"  # old files intact, no temporaries


# --- separate runs never share or overwrite a run folder -------------------------------------------------------------

def test_two_runs_started_together_get_separate_folders(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "stylefw", *TINY, "method.steps=1"]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    saved = sorted(out.strip().splitlines()[-1].removeprefix("Saved ") for out, _ in outputs)
    assert len(set(Path(path).parent for path in saved)) == 2
    assert all(Path(path).is_file() for path in saved)


def test_blow_up_after_the_last_step_is_caught_too(compose_cfg, tmp_path: Path) -> None:
    """3 steps evaluate 3 images; the 4th evaluation, of the final image, is the one after the run."""
    metrics = run(compose_cfg("method.steps=3", "method.init=noise", blows_up(3)), tmp_path)
    assert metrics["status"] == "failed" and metrics["steps"] == 2 and "at step 4" in metrics["error"]
    assert torch.isfinite(load_image(metrics["image"], None)).all()


def test_a_signal_during_a_checkpoint_write_waits_for_the_write(tmp_path: Path) -> None:
    """SIGTERM mid-save must not cut torch.save (a failed run): the file is written whole, then the interrupt follows."""
    import os
    import signal

    from stylefw.plugins.methods.fast.checkpoint import AtomicCheckpointIO
    from stylefw.runtime.lightning import sigterm_as_interrupt

    class SignalMidWrite(dict):
        def __reduce_ex__(self, protocol):  # runs while torch.save is writing
            os.kill(os.getpid(), signal.SIGTERM)
            return dict, (dict(self),)

    path = tmp_path / "last.ckpt"
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state": SignalMidWrite(step=3), "weights": torch.ones(4)}, path)
    assert torch.load(path, weights_only=False)["state"] == {"step": 3}
