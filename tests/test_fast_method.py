"""method=fast end to end on tiny sizes: train, checkpoint, resume, stylize a photo and a folder, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylefw.errors import StylefwError
from stylefw.run import run

TINY_FAST = ["method=fast", "threads=1", "net.width=0.125", "net.residual_blocks=1", "data.crop=16",
             "data.batch_size=2", "data.val_count=1", "method.checkpoint_every=2", "method.tile=64", "method.overlap=8"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors run fastest on one thread (and a loaded machine does not stall them)."""


def write_photos(folder: Path, count: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        y, x = np.mgrid[0:40, 0:48]
        base = np.stack([x * 5, y * 6, (x + y) * 2], axis=-1) + rng.integers(0, 60, (40, 48, 3))
        Image.fromarray(np.roll(base, index * 7, axis=1).clip(0, 255).astype(np.uint8)).save(folder / f"p{index}.png")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture
def fast_cfg(compose_cfg, photos: Path):
    def _compose(*overrides: str):
        return compose_cfg(*TINY_FAST, f"data.root={photos}", *overrides)

    return _compose


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """A training run's folder (3 steps on the tiny photos): its checkpoints/last.ckpt is a trained net."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from conftest import TINY
    from stylefw.schema import register_schema

    folder = tmp_path_factory.mktemp("trained")
    GlobalHydra.instance().clear()
    register_schema()
    with initialize_config_module(config_module="stylefw.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *TINY_FAST, f"data.root={photos}"])
    GlobalHydra.instance().clear()
    run(cfg, folder)
    return folder


def net_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return {key: value for key, value in state.items() if key.startswith("net.")}


def test_training_writes_a_checkpoint_a_sample_and_metrics(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    checkpoint = trained / "checkpoints" / "last.ckpt"
    assert metrics["status"] == "completed" and metrics["steps"] == 3
    assert metrics["checkpoint"] == str(checkpoint) and metrics["files"] == [str(checkpoint)]
    assert metrics["data"] == {"train_photos": 4, "val_photos": 1, "skipped": 0}
    assert set(metrics["loss"]) == {"content", "gram", "tv", "total"} and "style_distance" in metrics["quality"]
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3 and saved["stylefw"]["style"] == "church_at_auvers"
    assert saved["stylefw"]["net"]["_target_"].endswith("TransformNet")
    assert not any(key.startswith("objective") for key in saved["state_dict"])  # no backbone weights inside
    with Image.open(trained / "astronaut_church_at_auvers.png") as image:
        assert image.size == (32, 32)


def test_training_changes_the_net(trained: Path, fast_cfg, tmp_path: Path) -> None:
    untrained = run(fast_cfg("method.steps=1", "optimizer.lr=1e-9"), tmp_path)
    before, after = net_weights(Path(untrained["checkpoint"])), net_weights(trained / "checkpoints" / "last.ckpt")
    assert any(not torch.allclose(before[key], after[key]) for key in before)


def test_resumed_training_continues_exactly_where_it_stopped(fast_cfg, tmp_path: Path) -> None:
    straight = run(fast_cfg("method.steps=4"), tmp_path / "straight")
    first_half = run(fast_cfg("method.steps=2"), tmp_path / "first")
    resumed = run(fast_cfg("method.steps=4", f"checkpoint={tmp_path / 'first'}"), tmp_path / "resumed")
    assert resumed["steps"] == 4 and first_half["steps"] == 2
    expected, got = net_weights(Path(straight["checkpoint"])), net_weights(Path(resumed["checkpoint"]))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "first" / "checkpoints" / "last.ckpt").is_file()  # the resumed-from checkpoint is kept


def test_resuming_with_another_net_is_refused(fast_cfg, trained: Path, tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match="trains a different net .*resume with the net options"):
        run(fast_cfg("net.width=0.25", f"checkpoint={trained}"), tmp_path)


def test_distillation_learns_the_teachers_outputs(fast_cfg, trained: Path, tmp_path: Path) -> None:
    """method.teacher: the student learns to reproduce a trained net's outputs (no backbone pass per step)."""
    from stylefw.image.io import load_image
    from stylefw.plugins.methods.fast.checkpoint import load_net

    student = ["net.width=0.25", "net.residual_blocks=0", "optimizer.lr=3e-3", f"method.teacher={trained}"]
    before = run(fast_cfg(*student, "method.steps=1", "optimizer.lr=1e-9"), tmp_path / "before")
    after = run(fast_cfg(*student, "method.steps=60"), tmp_path / "after")
    assert after["status"] == "completed"
    teacher, _ = load_net(trained / "checkpoints" / "last.ckpt")
    photo = load_image("astronaut", 32)  # the scale the nets trained at (size=32)
    with torch.no_grad():
        target = teacher(photo)
        errors = [(load_net(Path(metrics["checkpoint"]))[0](photo) - target).pow(2).mean().item()
                  for metrics in (before, after)]
    assert errors[1] < 0.5 * errors[0], errors
    assert torch.load(after["checkpoint"], weights_only=True)["stylefw"]["teacher"] == str(trained)


def test_distillation_needs_the_teachers_style(fast_cfg, trained: Path, tmp_path: Path, tiny_image: Path) -> None:
    with pytest.raises(StylefwError, match="method.teacher was trained on the style 'church_at_auvers'"):
        run(fast_cfg(f"method.teacher={trained}", f"style={tiny_image}"), tmp_path)


def test_fast_dev_run(fast_cfg, tmp_path: Path) -> None:
    metrics = run(fast_cfg("method.steps=50", "+trainer.fast_dev_run=true"), tmp_path)
    assert metrics["status"] == "completed" and metrics["steps"] == 1


def test_stylize_a_photo_at_any_size(fast_cfg, trained: Path, tmp_path: Path, tiny_image: Path) -> None:
    metrics = run(fast_cfg("mode=stylize", f"checkpoint={trained}", f"content={tiny_image}", "size=150"), tmp_path)
    assert Path(metrics["image"]).name == "gradient_church_at_auvers.png"
    with Image.open(metrics["image"]) as image:
        assert image.size == (150, 112)  # larger than method.tile=64: stylized in windows
    assert metrics["trained_steps"] == 3 and "style_distance" in metrics["quality"]


def test_stylize_a_folder_writes_one_png_per_photo(fast_cfg, trained: Path, tmp_path: Path, photos: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "trip").mkdir(parents=True)
    Image.open(photos / "p0.png").save(folder / "a.jpg")
    Image.open(photos / "p1.png").convert("L").save(folder / "trip" / "b.webp")
    (folder / "broken.png").write_text("not an image")
    with pytest.warns(UserWarning, match="skipped: .*broken.png"):
        metrics = run(fast_cfg("mode=stylize", f"checkpoint={trained / 'checkpoints' / 'last.ckpt'}",
                               f"content={folder}"), tmp_path / "run")
    assert (tmp_path / "run" / "a_church_at_auvers.png").is_file()
    assert (tmp_path / "run" / "trip" / "b_church_at_auvers.png").is_file()
    assert metrics["stylized"] == 2 and metrics["skipped"] == 1 and "quality" not in metrics
    assert Path(metrics["image"]).name == "overview_church_at_auvers.png"


@pytest.mark.parametrize(("overrides", "message"), [
    (["mode=stylize"], "mode=stylize needs a trained net: add checkpoint="),
    (["mode=export", "checkpoint=/no/such.ckpt"], "checkpoint=/no/such.ckpt: /no/such.ckpt not found"),
    (["mode=paint"], "mode=paint is not a mode of FastMethod: use one of train, stylize, export"),
    (["data.root=null"], "method=fast trains on a folder of photos: add data.root="),
    (["preserve_color=luminance"], "preserve_color=luminance applies when stylizing: train without it"),
    (["content_mask=astronaut", "mask_style=astronaut"], "mask_style=astronaut needs a second stylization"),
])
def test_mistakes_are_one_line_errors(fast_cfg, tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(StylefwError, match=message):
        run(fast_cfg(*overrides), tmp_path)


def test_pixel_method_has_no_train_mode(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match="mode=train is not a mode of PixelMethod"):
        run(compose_cfg("mode=train"), tmp_path)


def test_a_file_that_is_not_a_checkpoint_is_refused(fast_cfg, tmp_path: Path, tiny_image: Path) -> None:
    with pytest.raises(StylefwError, match="could not be read"):
        run(fast_cfg("mode=stylize", f"checkpoint={tiny_image}"), tmp_path)


def test_export_matches_torch(fast_cfg, trained: Path, tmp_path: Path) -> None:
    metrics = run(fast_cfg("mode=export", f"checkpoint={trained}", "size=40"), tmp_path)
    onnx = tmp_path / "church_at_auvers.onnx"
    assert metrics["onnx"] == str(onnx) and onnx.is_file() and str(onnx) in metrics["files"]
    assert metrics["onnx_max_difference"] < 1e-4
    from stylefw.deploy import Stylizer
    from stylefw.image.io import load_image
    from stylefw.plugins.methods.fast.checkpoint import load_net

    net, _ = load_net(trained / "checkpoints" / "last.ckpt")
    photo = load_image("astronaut", 57)  # another size than the export's example
    with torch.no_grad():
        expected = net(photo).clamp(0, 1).numpy()
    np.testing.assert_allclose(Stylizer(onnx)(photo.numpy()), expected, atol=1e-4)


def test_deployment_resizes_photos_like_stylefw() -> None:
    """The onnxruntime entry point must feed a net the same pixels as `stylefw mode=stylize` at the same size."""
    from stylefw.deploy import Stylizer
    from stylefw.image.io import bundled_images, load_image, to_pil

    class Echo(Stylizer):  # the net replaced by the identity: what comes out is what went in
        def __init__(self) -> None:
            pass

        def __call__(self, pixels: np.ndarray) -> np.ndarray:
            return pixels

    photo = bundled_images()["astronaut"]
    with Image.open(photo) as image:
        deployed = np.asarray(Echo().stylize_image(image, 64))
    assert np.array_equal(deployed, np.asarray(to_pil(load_image(str(photo), 64))))


def test_deployment_entry_point_runs_without_torch(fast_cfg, trained: Path, tmp_path: Path, tiny_image: Path) -> None:
    run(fast_cfg("mode=export", f"checkpoint={trained}"), tmp_path)
    script = ("import sys; from stylefw.deploy import main; code = main(sys.argv[1:]); "
              "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    target = tmp_path / "out.png"
    args = [sys.executable, "-c", script, str(tmp_path / "church_at_auvers.onnx"), str(tiny_image), str(target)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Saved {target}"
    with Image.open(target) as image:
        assert image.size == (40, 30)
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr  # never overwrites


def cli(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    from conftest import TINY

    return subprocess.Popen([sys.executable, "-m", "stylefw", *TINY, *TINY_FAST, *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path: Path, photos: Path) -> None:
    first = tmp_path / "first"
    process = cli(f"data.root={photos}", "method.steps=400", f"hydra.run.dir={first}", cwd=tmp_path)
    checkpoint = first / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 90
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and str(checkpoint) in stderr
    stopped_at = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    assert 2 <= stopped_at < 400
    resumed = cli(f"data.root={photos}", f"method.steps={stopped_at + 2}", f"checkpoint={first}",
                  f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["steps"] == stopped_at + 2


def test_ddp_trains_on_two_cpu_processes(tmp_path: Path, photos: Path) -> None:
    """trainer=ddp: two processes over gloo, each on its own share of the photos; rank 0 writes the outputs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = cli(f"data.root={photos}", "trainer=ddp", "method.steps=2", "data.batch_size=1",
                  f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path, env=env)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 2 and metrics["processes"] == 2
    assert stdout.count("Saved ") == 1


def test_a_loss_that_is_not_finite_at_the_first_step_fails_cleanly(fast_cfg, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The run stops with status failed, names the term, and keeps the untrained net's result: no traceback."""
    from stylefw.plugins.methods.fast.train import FastStyleTraining

    evaluate = FastStyleTraining.evaluate

    def nan_gram(self, photos):
        stylized, total, parts = evaluate(self, photos)
        return stylized, total * float("nan"), {**parts, "gram": parts["gram"] * float("nan")}

    monkeypatch.setattr(FastStyleTraining, "evaluate", nan_gram)
    metrics = run(fast_cfg("method.steps=3"), tmp_path)
    assert metrics["status"] == "failed" and metrics["steps"] == 0
    assert "gram" in metrics["error"] and "optimizer.lr" in metrics["error"]
    assert Path(metrics["image"]).is_file()


def test_the_optimizer_group_builds_the_nets_optimizer(fast_cfg, tmp_path: Path) -> None:
    """method=fast trains with the `optimizer` group's optimizer: Adam at 1e-3 by default, anything else when asked."""
    default = fast_cfg()
    assert default.optimizer._target_ == "torch.optim.Adam" and default.optimizer.lr == 1e-3
    metrics = run(fast_cfg("method.steps=1", "optimizer=adam", "optimizer.lr=3e-4"), tmp_path / "adam")
    state = torch.load(metrics["checkpoint"], map_location="cpu", weights_only=True)["optimizer_states"][0]
    assert state["param_groups"][0]["lr"] == 3e-4 and "exp_avg" in next(iter(state["state"].values()))
    metrics = run(fast_cfg("method.steps=1", "optimizer=lbfgs_torch"), tmp_path / "lbfgs")
    state = torch.load(metrics["checkpoint"], map_location="cpu", weights_only=True)["optimizer_states"][0]
    assert state["param_groups"][0]["history_size"] == 20  # torch's L-BFGS, as configured
