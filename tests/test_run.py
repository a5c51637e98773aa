"""End-to-end runs in process on tiny images with a random-weight backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from stylefw.errors import StylefwError
from stylefw.image.filters import resize
from stylefw.image.io import load_image
from stylefw.run import CONFIG_CHUNK
from stylefw.run import run


def test_run_writes_image_config_and_metrics(compose_cfg, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    metrics = run(compose_cfg("threads=1"), tmp_path)
    assert torch.get_num_threads() == threads, "the run's thread count must not leak into the next run"
    png = tmp_path / "astronaut_church_at_auvers.png"
    assert metrics["image"] == str(png) and metrics["status"] == "completed" and metrics["steps"] == 3
    with Image.open(png) as image:
        assert image.size == (32, 32)
        stored = yaml.safe_load(image.text[CONFIG_CHUNK])
    assert stored["size"] == 32 and stored["backbone"]["weights"] == "random"
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == stored
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["loss"]) == {"content", "gram", "tv", "total"}
    assert saved["seconds"] > 0 and saved["peak_rss_mb"] > 0 and saved["threads"] == 1
    assert saved["image"] == str(png)


@pytest.mark.parametrize("optimizer, pyramid_levels", [("lbfgs", 1), ("adam", 1), ("lbfgs", 3)])
def test_optimization_lowers_the_objective(compose_cfg, tmp_path: Path, optimizer: str, pyramid_levels: int) -> None:
    """From a noise start the total loss must fall well below its starting value."""
    from stylefw.objective.objective import Objective
    from stylefw.method import build_terms
    from hydra.utils import instantiate

    cfg = compose_cfg(f"optimizer={optimizer}", "method.init=noise", "method.steps=30", "optimizer.lr=12.75"
                      if optimizer == "adam" else "optimizer.lr=1", f"method.pyramid_levels={pyramid_levels}")
    metrics = run(cfg, tmp_path)
    objective = Objective(instantiate(cfg.backbone), build_terms(cfg))
    objective.set_targets(content=load_image(cfg.content, 32), style=load_image(cfg.style, 32, "style"))
    torch.manual_seed(cfg.seed)
    with torch.no_grad():
        start, _ = objective(torch.rand(1, 3, 32, 32))
    assert metrics["loss"]["total"] < 0.5 * start.item()


@pytest.mark.parametrize("init", ["content", "content_in_style_colors", "noise", "style"])
def test_init_choices(compose_cfg, tmp_path: Path, init: str) -> None:
    metrics = run(compose_cfg(f"method.init={init}", "method.steps=1"), tmp_path)
    assert metrics["status"] == "completed"


def test_init_from_an_image_file(compose_cfg, tmp_path: Path, tiny_image: Path) -> None:
    assert run(compose_cfg(f"method.init={tiny_image}", "method.steps=1"), tmp_path)["status"] == "completed"


def test_same_seed_same_image(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("method.init=noise")
    a = load_image(run(cfg, tmp_path / "a")["image"], None)
    b = load_image(run(cfg, tmp_path / "b")["image"], None)
    assert torch.equal(a, b)


def test_output_copy_never_overwrites(compose_cfg, tmp_path: Path) -> None:
    target = tmp_path / "mine.png"
    run(compose_cfg(f"output={target}"), tmp_path / "run1")
    assert target.is_file()
    before = target.read_bytes()
    with pytest.raises(StylefwError, match="already exists.*overwrite=true"):
        run(compose_cfg(f"output={target}"), tmp_path / "run2")
    assert target.read_bytes() == before
    assert not (tmp_path / "run2").exists()  # the check happens before any work
    run(compose_cfg(f"output={target}", "overwrite=true", "seed=5", "method.init=noise"), tmp_path / "run3")
    assert target.read_bytes() != before


@pytest.mark.parametrize(
    ("override", "message"),
    [("size=0", "size=0 must be a positive"), ("method.steps=0", "method.steps=0 must be a positive whole number"),
     ("output=/nonexistent/dir/x.png", "does not exist"), ("output=x.jpg", "must end in .png"),
     ("content=/no/such.jpg", "not found")],
)
def test_bad_settings_are_one_line_errors(compose_cfg, tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(StylefwError, match=message) as error:
        run(compose_cfg(override), tmp_path)
    assert "\n" not in str(error.value)


def test_interrupt_saves_the_current_image(compose_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylefw.runtime.lightning import StepProgressBar

    original = StepProgressBar.on_train_batch_end

    def interrupt_at_step_2(self, trainer, *args):
        original(self, trainer, *args)
        if trainer.global_step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(StepProgressBar, "on_train_batch_end", interrupt_at_step_2)
    metrics = run(compose_cfg("method.steps=50"), tmp_path)
    assert metrics["status"] == "interrupted" and metrics["steps"] == 2
    assert Path(metrics["image"]).is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "interrupted"


def test_two_wandb_runs_in_one_process_are_separate(compose_cfg, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run(compose_cfg("logger=wandb"), tmp_path / "a")
    run(compose_cfg("logger=wandb"), tmp_path / "b")
    runs = [list((tmp_path / name / "wandb").glob("offline-run-*")) for name in ("a", "b")]
    assert len(runs[0]) == 1 and len(runs[1]) == 1
    assert runs[0][0].name.rsplit("-", 1)[1] != runs[1][0].name.rsplit("-", 1)[1]  # distinct run ids
    media = list((runs[0][0] / "files" / "media" / "images").glob("*.png"))
    assert {p.name.split("_")[0] for p in media} == {"result"}
    logged, saved = load_image(str(media[0]), None), load_image(str(tmp_path / "a" / "astronaut_church_at_auvers.png"), None)
    assert torch.allclose(logged, saved, atol=1 / 255)  # the real picture, not a black or rescaled one


def test_csv_logger_writes_metrics_and_images(compose_cfg, tmp_path: Path) -> None:
    run(compose_cfg("logger=csv", "method.image_every=1"), tmp_path)
    metrics_csv = next(tmp_path.glob("csv/*/metrics.csv")).read_text()
    assert "loss/gram" in metrics_csv and "loss/total" in metrics_csv
    assert sorted(p.name for p in tmp_path.glob("csv/*/images/*.png"))[:2] == ["image_000001.png", "image_000002.png"]
    assert next(tmp_path.glob("csv/*/hparams.yaml")).read_text().count("backbone") >= 1


@pytest.mark.parametrize("pixel_scale", [1.0, 255.0])
def test_first_lbfgs_step_is_bounded_in_optimizer_units(compose_cfg, pixel_scale: float) -> None:
    """torch's L-BFGS makes its first step with an L1 norm of at most lr in parameter units: in 0..255 units that
    is at most 1/255 in pixels, small enough for a useful curvature pair; in 0..1 units it can be 255 times larger."""
    from functools import partial

    from hydra.utils import instantiate

    from stylefw.objective.objective import Objective
    from stylefw.plugins.methods.pixel import PixelOptimization
    from stylefw.method import build_terms

    cfg = compose_cfg()
    content, style = load_image(cfg.content, 32), load_image(cfg.style, 32, "style")
    objective = Objective(instantiate(cfg.backbone), build_terms(cfg))
    objective.set_targets(content=content, style=style)
    module = PixelOptimization(objective, content, style, content, partial(torch.optim.LBFGS, lr=1, max_iter=1),
                               clamp=False, pixel_scale=pixel_scale)
    optimizer = module.configure_optimizers()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        total, _ = objective(module.pixels())
        total.backward()
        return total

    optimizer.step(closure)
    moved = (module.pixels().detach() - content).abs().sum().item()
    assert 0 < moved <= 1 / pixel_scale + 1e-6


def test_pyramid_levels_start_at_the_init_move_coarse_levels_and_clamp_the_sum(compose_cfg) -> None:
    from functools import partial

    from hydra.utils import instantiate

    from stylefw.method import build_terms
    from stylefw.objective.objective import Objective
    from stylefw.plugins.methods.pixel import PixelMethod, PixelOptimization

    cfg = compose_cfg()
    content, style = load_image(cfg.content, 33), load_image(cfg.style, 32, "style")
    objective = Objective(instantiate(cfg.backbone), build_terms(cfg))
    objective.set_targets(content=content, style=style)
    module = PixelOptimization(objective, content, style, content, partial(torch.optim.Adam, lr=20.0), clamp=True,
                               pixel_scale=255.0, pyramid_levels=3)
    height, width = content.shape[-2:]  # 33 on the longest side: odd sizes halve down
    assert [tuple(level.shape[-2:]) for level in module.coarse] == [(height // 2, width // 2), (height // 4, width // 4)]
    torch.testing.assert_close(module.pixels(), content)
    optimizer = module.configure_optimizers()
    for _ in range(3):
        optimizer.zero_grad()
        objective(module.pixels())[0].backward()
        optimizer.step()
        module.on_train_batch_end(None, None, 0)
    assert all(level.detach().abs().max() > 0 for level in module.coarse)
    pixels = module.pixels().detach()
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6 and not torch.allclose(pixels, content)
    with pytest.raises(StylefwError, match="method.pyramid_levels=0 must be a positive whole number"):
        PixelMethod(pyramid_levels=0)


def test_every_run_records_loss_independent_quality_scores(compose_cfg, tmp_path: Path) -> None:
    metrics = run(compose_cfg("logger=csv"), tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())["quality"]
    assert saved == metrics["quality"] and set(saved) == {"style_distance", "content_distance"}
    assert all(value >= 0 for value in saved.values())
    assert "quality/style_distance" in next(tmp_path.glob("csv/*/metrics.csv")).read_text()


def test_quality_scores_rank_a_content_start_closer_to_the_content_than_a_noise_start(compose_cfg,
                                                                                        tmp_path: Path) -> None:
    kept = run(compose_cfg("method.steps=1", "method.init=content"), tmp_path / "content")["quality"]
    noise = run(compose_cfg("method.steps=1", "method.init=noise"), tmp_path / "noise")["quality"]
    assert kept["content_distance"] < 0.1 < noise["content_distance"]


def test_metrics_none_skips_the_scores(compose_cfg, tmp_path: Path) -> None:
    from conftest import TINY_RUN

    assert "quality" not in run(compose_cfg(*TINY_RUN, "metrics=none", tiny=False), tmp_path)


def test_coarse_to_fine_passes_start_from_the_previous_result(compose_cfg, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """method.scales runs one pass per size, each on targets at its own size, starting from the last pass upsampled."""
    from stylefw.plugins.methods import pixel

    passes: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []
    results: list[torch.Tensor] = []
    optimize = pixel.PixelMethod.optimize

    def recording_optimize(self, context, content, styles, init, final):
        passes.append((tuple(content.shape[-2:]), tuple(styles[0].shape[-2:]), tuple(init.shape[-2:])))
        if results:  # the previous pass's result, upsampled, is where this pass starts
            assert torch.allclose(init, resize(results[-1], init.shape[-2:]))
        result = optimize(self, context, content, styles, init, final)
        assert not torch.equal(result.image, init), "the pass changed nothing"
        results.append(result.image)
        return result

    monkeypatch.setattr(pixel.PixelMethod, "optimize", recording_optimize)
    metrics = run(compose_cfg("size=64", "method.scales=[32,45]", "method.init=noise"), tmp_path)
    assert [content for content, _, _ in passes] == [(32, 32), (45, 45), (64, 64)]
    assert [init for _, _, init in passes] == [(32, 32), (45, 45), (64, 64)]
    assert passes[0][1][0] < passes[2][1][0]  # the style shrinks with the pass
    assert metrics["steps"] == 9 and metrics["status"] == "completed"
    assert metrics["passes"] == ["32x32", "45x45", "64x64"]
    assert load_image(metrics["image"], None).shape[-2:] == (64, 64)


def test_a_stop_in_a_coarse_pass_saves_that_pass_at_full_size(compose_cfg, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from stylefw.runtime.lightning import StepProgressBar

    def interrupt(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(StepProgressBar, "on_train_batch_end", interrupt)
    metrics = run(compose_cfg("size=64", "method.scales=[32]"), tmp_path)
    assert metrics["status"] == "interrupted" and metrics["stopped_in_pass"] == "1 of 2, 32x32"
    assert 1 <= metrics["steps"] <= 2
    assert load_image(metrics["image"], None).shape[-2:] == (64, 64)


def test_scales_must_increase(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(StylefwError, match=r"method.scales=.*increasing"):
        run(compose_cfg("method.scales=[64,32]"), tmp_path)
    with pytest.raises(StylefwError, match=r"number of passes"):
        run(compose_cfg("method.scales=0"), tmp_path)


def test_a_count_of_scales_spaces_the_passes_by_root_two() -> None:
    from stylefw.plugins.methods.pixel import pass_shapes

    assert pass_shapes((512, 384), 3) == [(256, 192), (362, 272), (512, 384)]
    assert pass_shapes((64, 64), 1) == [(64, 64)]
    assert pass_shapes((20, 20), 3) == [(20, 20)]  # passes under 16 px on a side are left out
    assert pass_shapes((32, 128), [64]) == [(16, 64), (32, 128)]
    assert pass_shapes((24, 128), [64]) == [(24, 128)]  # the content would be 12 px high
    assert pass_shapes((32, 128), [64], style_shapes=[(20, 128)]) == [(32, 128)]  # the style would be 10 px high
