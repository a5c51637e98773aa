"""The typed schema of the primary config, and how config mistakes reach the user: one or two lines, no traceback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from stylefw.image.io import PILLOW_MAX_IMAGE_PIXELS
from stylefw.schema import StylefwConfig

CONF = Path(__file__).parent.parent / "conf"


def test_every_top_level_key_and_group_is_in_the_schema() -> None:
    """A key added to conf/config.yaml (or a new config group) must also get a typed field in stylefw/schema.py."""
    primary = yaml.safe_load((CONF / "config.yaml").read_text())
    groups = {path.name for path in CONF.iterdir() if path.is_dir() and not path.name.startswith(("_", "."))}
    fields = {field.name for field in dataclasses.fields(StylefwConfig)}
    assert set(primary) - {"defaults", "hydra"} <= fields
    assert groups <= fields


def test_schema_defaults_match_config_yaml() -> None:
    primary = yaml.safe_load((CONF / "config.yaml").read_text())
    schema = StylefwConfig()
    for key, value in primary.items():
        if key not in ("defaults", "hydra"):
            default = getattr(schema, key)
            assert (dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default) == value, key


def test_default_limit_is_pillows() -> None:
    from PIL import Image

    assert PILLOW_MAX_IMAGE_PIXELS == Image.MAX_IMAGE_PIXELS


def test_composed_config_is_typed(compose_cfg) -> None:
    cfg = compose_cfg()
    assert OmegaConf.get_type(cfg) is StylefwConfig
    assert cfg.size == 32 and cfg.max_image_pixels == PILLOW_MAX_IMAGE_PIXELS
    assert compose_cfg("max_image_pixels=null").max_image_pixels is None
    assert compose_cfg("size=64").size == 64


@pytest.mark.parametrize("override", ["size=abc", "seed=1.5", "size=", "overwrite=maybe", "threads=x",
                                      "max_image_pixels=lots", "content=[a,b]"])
def test_wrong_types_fail_while_composing(compose_cfg, override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_cfg(override)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("size=abc", "stylefw: error: size=abc: Value 'abc' of type 'str' could not be converted to Integer: "
                     "give a whole number"),
        ("seed=1.5", "stylefw: error: seed=1.5: Value '1.5' of type 'float' could not be converted to Integer: "
                     "give a whole number"),
        ("overwrite=maybe", "stylefw: error: overwrite=maybe: Value 'maybe' is not a valid bool (type str): "
                            "give true or false"),
        ("threads=x", "stylefw: error: threads=x: Value 'x' of type 'str' could not be converted to Integer: "
                      "give a whole number or null"),
        ("sise=256", "stylefw: error: unknown config key 'sise': did you mean size?"),
        ("method.stepz=3", "stylefw: error: unknown config key 'method.stepz': did you mean method.steps?"),
        ("loss.gram.wieght=3", "stylefw: error: unknown config key 'loss.gram.wieght': did you mean loss.gram.weight?"),
        ("optimizer.zzz=3", "stylefw: error: unknown config key 'optimizer.zzz': optimizer has lr, history_size, "
                            "max_step"),
        ("backbone=resnet", "stylefw: error: unknown backbone 'resnet': choose one of vgg16, vgg19"),
        ("method=fast_typo", "stylefw: error: unknown method 'fast_typo': choose one of"),
        ("size=[", "stylefw: error: cannot parse 'size=[' (no viable alternative at input '['): quote values"),
    ],
)
def test_config_mistakes_are_one_or_two_lines(stylefw_cli, override: str, expected: str) -> None:
    result = stylefw_cli(override)
    assert result.code == 2 and "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith(expected), result.stderr


def test_unknown_key_hint_explains_the_plus(stylefw_cli) -> None:
    """Hydra itself answers `sise=256` with "To append to your config use +sise=256", which adds a useless key."""
    lines = stylefw_cli("sise=256").stderr.strip().splitlines()
    assert "+sise" not in lines[0] and "a new key for your own plugin needs a leading +" in lines[1]


def test_plus_adds_a_key_on_purpose(compose_cfg) -> None:
    assert compose_cfg("+method.note=hello").method.note == "hello"


@pytest.mark.parametrize("how", [{"HYDRA_FULL_ERROR": "1"}, {"args": ["debug=true"]}])
def test_tracebacks_only_on_request(tmp_path: Path, how: dict) -> None:
    result = subprocess.run([sys.executable, "-m", "stylefw", "size=abc", *how.get("args", []), "--cfg", "job"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **{k: v for k, v in how.items() if k != "args"}})
    assert result.returncode != 0 and "Traceback" in result.stderr and "could not be converted" in result.stderr


def test_run_errors_show_a_traceback_with_debug(stylefw_cli) -> None:
    from stylefw.errors import StylefwError

    with pytest.raises(StylefwError, match="content image 'missing.png' not found"):
        stylefw_cli("content=missing.png", "debug=true")
