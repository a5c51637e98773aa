"""`loss=gram+hist`: Hydra composes any '+' combination of loss options (hydra_plugins.stylefw.composition)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.plugins.config_source import ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

from conftest import TINY
from hydra_plugins.stylefw.composition import (
    CombinationConfigSource,
    StylefwSearchPathPlugin,
    split_combination,
)
from stylefw.objective.terms import LossTerm
from stylefw.method import build_terms
from test_cli import stylefw


def choices(*overrides: str) -> dict[str, str]:
    cfg = compose(config_name="config", overrides=[*TINY, *overrides], return_hydra_config=True)
    return dict(cfg.hydra.runtime.choices)


def test_plugins_are_discovered() -> None:
    assert CombinationConfigSource.__name__ in {p.__name__ for p in Plugins.instance().discover(ConfigSource)}
    assert StylefwSearchPathPlugin.__name__ in {p.__name__ for p in Plugins.instance().discover(SearchPathPlugin)}


@pytest.mark.parametrize(("path", "expected"), [
    ("loss/gram+hist", ("loss", ["gram", "hist"])),
    ("loss/shifted_gram+hist+tv.yaml", ("loss", ["shifted_gram", "hist", "tv"])),
    ("loss/gram", None),            # a single option is a real file, not a combination
    ("backbone/vgg16+vgg19", None),  # only the loss group composes
    ("loss/gram+", None),
    ("loss/+gram", None),
    ("gram+hist", None),
])
def test_split_combination(path: str, expected: tuple[str, list[str]] | None) -> None:
    assert split_combination(path) == expected


def test_combination_equals_the_native_list_in_its_order(compose_cfg) -> None:
    combined = compose_cfg("loss=tv+gram")
    assert list(combined.loss) == ["tv", "gram"]
    assert combined.loss == compose_cfg("loss=[tv,gram]").loss
    assert compose_cfg("loss=gram").loss == compose_cfg("loss=[gram]").loss


def test_each_term_keeps_its_key_and_can_be_overridden(compose_cfg) -> None:
    cfg = compose_cfg("loss=gram+tv", "loss.tv.weight=3", "loss.gram.layers=[relu1_1]")
    assert cfg.loss.tv.weight == 3 and list(cfg.loss.gram.layers) == ["relu1_1"]


def test_the_choice_is_recorded_as_written(compose_cfg) -> None:
    assert choices()["loss"] == "gram+tv"  # the default
    assert choices("loss=tv+gram")["loss"] == "tv+gram"


def test_combinations_do_not_crowd_the_option_list(compose_cfg) -> None:
    compose_cfg()
    options = GlobalHydra.instance().config_loader().get_group_options("loss")
    assert {"gram", "tv"} <= set(options) and not any("+" in option for option in options)


@pytest.mark.parametrize("combination", ["gram+hist", "shifted_gram+tv", "shifted_gram+hist+tv"])
def test_issue_combinations_build_their_terms_plus_content(compose_cfg, combination: str) -> None:
    terms = build_terms(compose_cfg(f"loss={combination}"))
    assert list(terms) == ["content", *combination.split("+")]
    assert all(isinstance(term, LossTerm) for term in terms.values())


def test_unknown_term_names_it_and_lists_the_options(compose_cfg) -> None:
    with pytest.raises(MissingConfigException) as caught:
        compose_cfg("loss=gram+nope")
    message = str(caught.value)
    assert "'nope'" in message and "Available options in 'loss': gram," in message and "tv" in message


def test_repeated_term_is_refused(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException, match="'gram' appears more than once"):
        compose_cfg("loss=gram+tv+gram")


def test_other_hydra_apps_get_no_combination_source() -> None:
    foreign, ours = ConfigSearchPathImpl(), ConfigSearchPathImpl()
    foreign.append("main", "file://conf")
    ours.append("main", "pkg://stylefw.conf")
    for search_path in (foreign, ours):
        StylefwSearchPathPlugin().manipulate_search_path(search_path)
    assert [e.path for e in foreign.get_path()] == ["file://conf"]
    assert [e.path for e in ours.get_path()] == ["pkg://stylefw.conf", "stylefw-combo://"]


def test_cli_unknown_term_is_a_short_error_listing_the_options(tmp_path: Path) -> None:
    result = stylefw("loss=gram+nope", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3 and "Traceback" not in result.stderr
    assert "'nope'" in lines[0] and all(option in lines[0] for option in ("gram", "tv"))


def test_cli_multirun_over_combinations_records_each_choice(tmp_path: Path) -> None:
    combinations = ["gram", "gram+hist", "shifted_gram+hist"]
    # 64 px: shifted_gram's default shifts (up to 32 px at relu1_1) must fit the feature maps
    result = stylefw("-m", *TINY, "size=64", f"loss={','.join(combinations)}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/*/metrics.json"))
    assert len(runs) == 3
    recorded = {}
    for metrics in runs:
        hydra_cfg = yaml.safe_load((metrics.parent / ".hydra" / "hydra.yaml").read_text())
        choice = hydra_cfg["hydra"]["runtime"]["choices"]["loss"]
        recorded[choice] = set(yaml.safe_load(metrics.read_text())["loss"])
    assert recorded == {c: {"content", *c.split("+"), "total"} for c in combinations}
