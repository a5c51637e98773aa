"""Creative controls (stylefw/controls.py, stylefw/image/masks.py, their compositing in stylefw/run.py): several
styles, style scale, colour, masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylefw.image.color import color_statistics, rgb_to_yiq
from stylefw.method import RunContext
from stylefw.controls import CreativeControls
from stylefw.errors import StylefwError
from stylefw.image.io import load_image
from stylefw.image.masks import composite, feather, load_mask
from stylefw.run import run


def write_mask(path: Path, width: int = 32, height: int = 32, split: float = 0.5, value: int = 255) -> Path:
    """A mask whose left part (`split` of the width) is `value` and the rest black."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, : round(width * split)] = value
    Image.fromarray(pixels).save(path)
    return path


def gram_target(context: RunContext, weights: list[float] | None = None) -> torch.Tensor:
    """The Gram term's relu1_1 target after the pixel method set the targets from the context's styles."""
    from stylefw.plugins.methods.pixel import PixelOptimization

    module = PixelOptimization(context.objective, context.content, context.styles, context.content,
                               context.optimizer, clamp=True, style_weights=weights or context.style_weights)
    module.on_fit_start()
    return context.objective.terms["gram"].target("relu1_1").clone()


def saved(metrics: dict) -> torch.Tensor:
    return load_image(metrics["image"], None, role="result")


# --------------------------------------------------------------------------- several styles


def test_style_weights_blend_the_targets(compose_cfg, tmp_path: Path) -> None:
    pair = "style=[church_at_auvers,astronaut]"
    church = gram_target(RunContext(compose_cfg("style=church_at_auvers"), tmp_path))
    photo = gram_target(RunContext(compose_cfg("style=astronaut"), tmp_path))
    only_first = gram_target(RunContext(compose_cfg(pair, "style_weights=[1,0]"), tmp_path))
    halves = gram_target(RunContext(compose_cfg(pair, "style_weights=[0.5,0.5]"), tmp_path))
    equal = gram_target(RunContext(compose_cfg(pair), tmp_path))
    assert torch.allclose(only_first, church, atol=1e-7)
    assert torch.allclose(halves, (church + photo) / 2, atol=1e-7) and torch.allclose(equal, halves)
    assert (church - photo).abs().max() > 10 * (halves - (church + photo) / 2).abs().max() + 1e-6


def test_weights_are_normalised_and_checked(compose_cfg, tmp_path: Path) -> None:
    context = RunContext(compose_cfg("style=[church_at_auvers,astronaut]", "style_weights=[3,1]"), tmp_path)
    assert context.style_weights == [0.75, 0.25] and len(context.styles) == 2
    assert context.style is context.styles[0]


def test_several_styles_run_is_named_after_all_and_scored_by_the_weighted_mean(compose_cfg, tmp_path: Path) -> None:
    from stylefw.quality import build_quality_metrics

    cfg = compose_cfg("style=[church_at_auvers,astronaut]", "style_weights=[0.25,0.75]")
    metrics = run(cfg, tmp_path)
    assert Path(metrics["image"]).name == "astronaut_church_at_auvers+astronaut.png"
    scorer = build_quality_metrics(cfg.metrics)
    result, content = saved(metrics), load_image("astronaut", 32)
    expected = 0.25 * scorer.style_distance(result, load_image("church_at_auvers", 32, "style")) + \
        0.75 * scorer.style_distance(result, content)
    assert metrics["quality"]["style_distance"] == pytest.approx(expected, abs=2e-3)  # 8-bit rounding of the PNG


# --------------------------------------------------------------------------- style scale


def test_style_scale_resizes_the_style_fed_to_the_backbone(compose_cfg, tmp_path: Path) -> None:
    full = RunContext(compose_cfg("size=64"), tmp_path)
    half = RunContext(compose_cfg("size=64", "style_scale=0.5"), tmp_path)
    assert max(full.styles[0].shape[-2:]) == 64 and max(half.styles[0].shape[-2:]) == 32
    assert half.content.shape == full.content.shape  # the output size does not change
    assert not torch.allclose(gram_target(full), gram_target(half), rtol=0.05)  # the statistics do


def test_a_style_scaled_below_the_backbone_minimum_names_style_scale(compose_cfg, tmp_path: Path) -> None:
    context = RunContext(compose_cfg("size=32", "style_scale=0.25"), tmp_path)
    with pytest.raises(StylefwError, match=r"^style_scale=0.25 makes style 'church_at_auvers' 8 px .*raise style_sc"):
        context.objective


# --------------------------------------------------------------------------- colour preservation


def chroma_gap(image: torch.Tensor, content: torch.Tensor) -> float:
    return float((rgb_to_yiq(image)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean())


def test_luminance_mode_keeps_the_content_chroma(compose_cfg, tmp_path: Path) -> None:
    content = load_image("astronaut", 32)
    kept = saved(run(compose_cfg("preserve_color=luminance", "method.init=noise"), tmp_path / "kept"))
    free = saved(run(compose_cfg("method.init=noise"), tmp_path / "free"))
    assert chroma_gap(kept, content) < 0.01  # 8-bit rounding and clipping of out-of-gamut pixels
    assert chroma_gap(free, content) > 5 * chroma_gap(kept, content)


def test_luminance_mode_stylizes_grey_images(compose_cfg, tmp_path: Path) -> None:
    context = RunContext(compose_cfg("preserve_color=luminance"), tmp_path)
    for image in (context.content, context.style):
        assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])
    assert not torch.equal(context.original_content[:, 0], context.original_content[:, 1])


def test_histogram_mode_gives_the_style_the_content_colours(compose_cfg, tmp_path: Path) -> None:
    context = RunContext(compose_cfg("preserve_color=histogram", "size=64"), tmp_path)
    style_mean, style_cov = color_statistics(context.style, eps=0)
    content_mean, content_cov = color_statistics(context.original_content, eps=0)
    original_mean, original_cov = color_statistics(context.original_styles[0], eps=0)
    # Clipping to [0, 1] keeps the match approximate (the astronaut's contrast is high: clipped pixels lose about a
    # fifth of the covariance); before matching, the style was much further from the content.
    assert (style_mean - content_mean).abs().max() < 0.02 < (original_mean - content_mean).abs().max()
    relative = [float((cov - content_cov).norm() / content_cov.norm()) for cov in (style_cov, original_cov)]
    assert relative[0] < 0.25 and relative[1] > 0.6


def test_histogram_mode_without_style_images_matches_the_result(compose_cfg, tmp_path: Path) -> None:
    """A method that stylizes without loading the style (a trained net) gets its result's colours matched."""
    context = RunContext(compose_cfg("preserve_color=histogram"), tmp_path)
    result = torch.rand(1, 3, 32, 32) * 0.3 + torch.tensor([0.6, 0.1, 0.3]).view(1, 3, 1, 1)
    finished = context.restore_colors(result)
    assert not context.styles_loaded
    mean, _ = color_statistics(finished, eps=0)
    content_mean, _ = color_statistics(context.original_content, eps=0)
    assert (mean - content_mean).abs().max() < 0.02
    context.styles  # once the method has used the (matched) styles, the result is left alone
    assert torch.equal(context.restore_colors(result), result)


# --------------------------------------------------------------------------- masks


def test_mask_keeps_the_content_outside_and_stylizes_inside(compose_cfg, tmp_path: Path) -> None:
    mask = write_mask(tmp_path / "left.png", 64, 64)  # any size: resized to the output
    result = saved(run(compose_cfg(f"content_mask={mask}", "mask_feather=0", "method.init=noise"), tmp_path / "r"))
    content = load_image("astronaut", 32)
    # halving the mask's size blends the two columns at its edge (x = 15, 16)
    assert (result[..., 17:] - content[..., 17:]).abs().max() <= 1 / 255 + 1e-6
    assert (result[..., :15] - content[..., :15]).abs().mean() > 0.1


def test_mask_style_stylizes_the_rest_with_the_second_style(compose_cfg, tmp_path: Path, tiny_image: Path) -> None:
    mask = write_mask(tmp_path / "left.png")
    # Adam moves every pixel from the first step; L-BFGS on this tiny random backbone's small loss can stay within
    # a level of the content for the first steps, and then both styles give the same image.
    steps = ["optimizer=adam", "method.steps=30"]
    both = run(compose_cfg(f"content_mask={mask}", f"mask_style={tiny_image}", "mask_feather=0", *steps),
               tmp_path / "both")
    main = saved(run(compose_cfg(*steps), tmp_path / "main"))
    second = saved(run(compose_cfg(f"style={tiny_image}", *steps), tmp_path / "second"))
    result = saved(both)
    assert (result[..., :16] - main[..., :16]).abs().max() <= 1 / 255 + 1e-6
    assert (result[..., 16:] - second[..., 16:]).abs().max() <= 1 / 255 + 1e-6
    assert (main[..., 16:] - second[..., 16:]).abs().mean() > 0.01  # the two styles do differ
    recorded = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert recorded["mask_style"]["steps"] == 30 and recorded["steps"] == 60


def test_feathering_gives_a_soft_edge(compose_cfg, tmp_path: Path) -> None:
    hard = load_mask(str(write_mask(tmp_path / "m.png")), (32, 32))
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    soft = feather(hard, 8)
    edge = soft[0, 0, 10]  # one row across the edge at x = 16
    assert 0.1 < float(edge[15]) < 0.9 and 0.1 < float(edge[16]) < 0.9
    assert float(edge[0]) > 0.999 and float(edge[-1]) < 0.001  # far from the edge: unchanged (border too)
    assert torch.all(edge[1:] <= edge[:-1] + 1e-6)  # a monotone ramp
    assert torch.equal(feather(hard, 0), hard)
    context = RunContext(compose_cfg(f"content_mask={tmp_path / 'm.png'}", "mask_feather=8"), tmp_path)
    assert torch.allclose(context.content_mask, soft)


def test_grey_mask_blends_partly() -> None:
    inside, outside = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    assert torch.allclose(composite(inside, outside, torch.full((1, 1, 4, 4), 0.25)), torch.full((1, 3, 4, 4), 0.25))


def test_transparent_pixels_of_a_mask_count_as_black(tmp_path: Path) -> None:
    """White painted on a transparent layer: the painted part is the region."""
    pixels = np.zeros((32, 32, 4), dtype=np.uint8)
    pixels[:, :16] = (255, 255, 255, 255)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "layer.png")
    mask = load_mask(str(tmp_path / "layer.png"), (32, 32))
    assert float(mask[..., :16].min()) == 1.0 and float(mask[..., 16:].max()) == 0.0


def test_stretched_mask_warns(tmp_path: Path) -> None:
    from stylefw.errors import StylefwWarning

    with pytest.warns(StylefwWarning, match="stretched to fit"):
        load_mask(str(write_mask(tmp_path / "wide.png", 64, 16)), (32, 32))


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["style=[church_at_auvers,astronaut]", "style_weights=[1]"], r"^style_weights=\[1.0\] does not fit 2 style"),
        (["style_weights=[-1]"], "one non-negative weight per style"),
        (["style=[church_at_auvers,astronaut]", "style_weights=[0,0]"], "not all zero"),
        (["style=[]"], r"^style=\[\] names no image"),
        (["style=[church_at_auvers,nope.jpg]"], "^style image 'nope.jpg' not found"),
        (["style_scale=-0.5"], r"^style_scale=-0.5 must be a positive number"),
        (["style_scale=0"], "must be a positive number"),
        (["preserve_color=sepia"], "^preserve_color=sepia is not one of luminance, histogram"),
        (["mask_style=astronaut"], "^mask_style=astronaut .* content_mask, which is not set"),
        (["content_mask=missing.png"], "^content_mask image 'missing.png' not found"),
        (["content_mask=astronaut", "mask_feather=-2"], r"^mask_feather=-2.0 must be a number >= 0 \(a width in pixels"),
    ],
)
def test_bad_controls_are_one_line_errors(compose_cfg, tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(StylefwError, match=message) as error:
        run(compose_cfg(*overrides), tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "metrics.json").exists()


def test_mask_that_is_not_an_image_or_is_black_is_refused(compose_cfg, tmp_path: Path) -> None:
    text = tmp_path / "mask.png"
    text.write_text("not an image")
    with pytest.raises(StylefwError, match="^content_mask image .* is not an image Pillow can read") as error:
        run(compose_cfg(f"content_mask={text}"), tmp_path / "a")
    assert "\n" not in str(error.value)
    black = write_mask(tmp_path / "black.png", value=0)
    with pytest.raises(StylefwError, match="black everywhere, so nothing would be stylized: paint the region"):
        run(compose_cfg(f"content_mask={black}"), tmp_path / "b")


def test_preserve_color_none_is_off() -> None:
    from omegaconf import OmegaConf

    controls = CreativeControls.from_config(OmegaConf.create({"style": "church_at_auvers", "preserve_color": "none"}))
    assert controls.preserve_color is None and controls.styles == ("church_at_auvers",)
    assert controls.style_weights == (1.0,)


def test_cli_runs_several_styles_with_controls(stylefw_cli, tmp_path: Path) -> None:
    result = stylefw_cli("style=[church_at_auvers,astronaut]", "style_weights=[0.7,0.3]", "preserve_color=luminance",
                         "style_scale=1.5", "hydra.run.dir=run")
    assert result.code == 0, result.stderr
    assert (tmp_path / "run" / "astronaut_church_at_auvers+astronaut.png").is_file()


class _FixedImageMethod:
    """A stand-in for a trained network: returns a fixed image and never reads the style images."""

    supports_mask_style = False

    def __init__(self, image: torch.Tensor, scored: bool = True) -> None:
        self.image, self.scored, self.calls = image, scored, 0

    def run(self, context: RunContext):
        from stylefw.method import RunResult

        self.calls += 1
        context.content  # what a net stylizes
        return RunResult(image=self.image.clone(), losses={}, steps=0, scored=self.scored)


def test_controls_apply_to_a_method_that_never_reads_the_style(compose_cfg, tmp_path: Path) -> None:
    from stylefw.run import stylize

    mask = write_mask(tmp_path / "left.png")
    cfg = compose_cfg("preserve_color=luminance", f"content_mask={mask}", "mask_feather=0")
    context = RunContext(cfg, tmp_path)
    method = _FixedImageMethod(torch.rand(1, 3, 32, 32))
    image = stylize(method, context).image
    content = context.original_content
    assert not context.styles_loaded
    assert (image[..., :16] - method.image[..., :16]).abs().mean() > 0.05  # inside: recoloured
    assert chroma_gap(image[..., :16], content[..., :16]) < 0.01
    assert torch.allclose(image[..., 16:], content[..., 16:], atol=1e-6)  # outside: the content


def test_a_method_without_mask_style_support_refuses_it_before_running(compose_cfg, tmp_path: Path) -> None:
    from stylefw.run import stylize

    cfg = compose_cfg(f"content_mask={write_mask(tmp_path / 'm.png')}", "mask_style=astronaut")
    method = _FixedImageMethod(torch.rand(1, 3, 32, 32))
    with pytest.raises(StylefwError, match="^mask_style=astronaut needs a second stylization .* drop mask_style"):
        stylize(method, RunContext(cfg, tmp_path))
    assert method.calls == 0


def test_an_overview_result_is_left_alone(compose_cfg, tmp_path: Path) -> None:
    from stylefw.run import stylize

    method = _FixedImageMethod(torch.rand(1, 3, 20, 50), scored=False)
    result = stylize(method, RunContext(compose_cfg("preserve_color=luminance"), tmp_path))
    assert torch.equal(result.image, method.image)
