"""The third-party example in examples/mean_std_loss: its loss is right, and stylefw finds it without a core edit."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import torch

from conftest import TINY
from stylefw.objective.terms import FeatureMatchingLoss
from test_cli import stylefw

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mean_std_loss"
PACKAGE = EXAMPLE / "stylefw_mean_std"
CONF = PACKAGE / "conf"


def load_example() -> ModuleType:
    """The example's loss module, imported from its file so this process's import path stays untouched."""
    spec = importlib.util.spec_from_file_location("example_mean_std", PACKAGE / "mean_std.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mean_std = load_example()


def naive_statistics(features: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = features.shape
    stats = torch.zeros(batch, 2, channels, dtype=features.dtype)
    for b in range(batch):
        for c in range(channels):
            values = [features[b, c, y, x] for y in range(height) for x in range(width)]
            mean = sum(values) / len(values)
            variance = sum((v - mean) ** 2 for v in values) / len(values)
            stats[b, 0, c], stats[b, 1, c] = mean, (variance + mean_std.STD_EPSILON) ** 0.5
    return stats


class TestMeanStd:
    def test_statistics_match_naive_reference(self) -> None:
        features = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        torch.testing.assert_close(mean_std.channel_mean_std(features), naive_statistics(features))

    def test_loss_matches_naive_reference(self) -> None:
        features = torch.randn(1, 3, 4, 4, dtype=torch.float64)
        target = torch.randn(1, 2, 3, dtype=torch.float64)
        stats = naive_statistics(features)
        expected = sum((stats[0, 0, c] - target[0, 0, c]) ** 2 + (stats[0, 1, c] - target[0, 1, c]) ** 2
                       for c in range(3)) / 3
        torch.testing.assert_close(mean_std.mean_std_loss(features, target), expected)

    def test_gradcheck_including_a_constant_channel(self) -> None:
        features = torch.randn(1, 2, 3, 3, dtype=torch.float64)
        features[0, 1] = 0.5  # a ReLU that never fires: the epsilon keeps the gradient finite
        target = torch.randn(1, 2, 2, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda f: mean_std.mean_std_loss(f, target), (features.requires_grad_(),))

    def test_module_is_a_weighted_style_term(self) -> None:
        style = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
        image = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
        term = mean_std.MeanStdLoss(weight=7.0, layers=["a", "b"], layer_weights=[0.25, 0.75])
        term.set_targets([style], [1.0])
        expected = 7.0 * sum(w * mean_std.mean_std_loss(image[k], mean_std.channel_mean_std(style[k]))
                             for k, w in (("a", 0.25), ("b", 0.75)))
        assert isinstance(term, FeatureMatchingLoss) and term.target_image == "style"
        torch.testing.assert_close(term(image, torch.zeros(1)), expected)
        torch.testing.assert_close(term(style, torch.zeros(1)), torch.tensor(0.0))


def loss_options(help_text: str) -> set[str]:
    """The options `stylefw --help` lists for the loss group."""
    line = next(line for line in help_text.splitlines() if line.startswith("loss: "))
    return set(line.removeprefix("loss: ").split(", "))


def test_no_install_route_runs_and_shows_in_help(tmp_path: Path) -> None:
    """The loss module on PYTHONPATH (without the example's hydra_plugins) plus hydra.searchpath for its YAML."""
    shutil.copytree(PACKAGE, tmp_path / "path" / "stylefw_mean_std")
    env = {"PYTHONPATH": str(tmp_path / "path")}
    searchpath = f"hydra.searchpath=[file://{CONF}]"

    result = stylefw(*TINY, searchpath, "loss=gram+mean_std", "loss.mean_std.weight=2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1].removeprefix("Saved ")).parent
    losses = json.loads((run_dir / "metrics.json").read_text())["loss"]
    assert set(losses) == {"content", "gram", "mean_std", "total"} and losses["mean_std"] > 0
    assert "loss: gram+mean_std" in (run_dir / ".hydra" / "hydra.yaml").read_text()

    assert {"gram", "tv", "mean_std"} <= loss_options(stylefw("--help", searchpath, cwd=tmp_path, env=env).stdout)


def test_pip_installed_plugin_appears_by_itself(tmp_path: Path) -> None:
    """After `pip install` the example's SearchPathPlugin adds its configs: no hydra.searchpath needed."""
    source = shutil.copytree(EXAMPLE, tmp_path / "source")  # building writes into the source tree
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(source)], check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(target)}

    assert {"gram", "tv", "mean_std"} <= loss_options(stylefw("--help", cwd=tmp_path, env=env).stdout)
    job = stylefw("loss=gram+mean_std", "--cfg", "job", cwd=tmp_path, env=env)
    assert job.returncode == 0, job.stderr
    assert "_target_: stylefw_mean_std.mean_std.MeanStdLoss" in job.stdout
