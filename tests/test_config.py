"""Every option of every config group composes and instantiates (the registry is the config tree)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stylefw.objective.terms import LossTerm
from stylefw.method import Method

EXPECTED_GROUPS = {
    "backbone": {"vgg16", "vgg19"},
    "content_loss": {"default"},
    "loss": {"gram", "hist", "shifted_gram", "tv"},
    "method": {"pixel", "fast"},
    "optimizer": {"adam", "lbfgs"},
    "trainer": {"default", "ddp"},
    "logger": {"csv", "none", "wandb"},
    "metrics": {"default", "none"},
    "net": {"johnson", "slim"},
    "data": {"image_folder"},
}


def group_options(group: str) -> set[str]:
    return set(GlobalHydra.instance().config_loader().get_group_options(group))


def test_registry_lists_every_plugin(compose_cfg) -> None:
    compose_cfg()
    for group, options in EXPECTED_GROUPS.items():
        assert options <= group_options(group), group


def test_default_config_is_the_offline_gatys_job(compose_cfg) -> None:
    cfg = compose_cfg(tiny=False)
    assert cfg.backbone.arch == "vgg19" and cfg.backbone.weights == "caffe"
    assert list(cfg.loss) == ["gram", "tv"]
    assert cfg.content_loss.layers == ["relu4_2"]
    assert cfg.loss.gram.layers == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert cfg.method._target_.endswith("PixelMethod") and cfg.method.init == "content_in_style_colors"
    assert cfg.optimizer._target_ == "stylefw.plugins.optimizers.lbfgs.LBFGS"
    assert cfg.logger._target_.endswith("WandbLogger")
    assert cfg.content == "astronaut" and cfg.style == "church_at_auvers" and cfg.size == 512


@pytest.mark.parametrize("arch", sorted(EXPECTED_GROUPS["backbone"]))
def test_backbone_options_instantiate(compose_cfg, arch: str) -> None:
    backbone = instantiate(compose_cfg(f"backbone={arch}", "backbone.weights=random", "backbone.width=0.125").backbone)
    assert backbone.arch == arch


@pytest.mark.parametrize("option", sorted(EXPECTED_GROUPS["loss"]))
def test_loss_options_instantiate_under_their_own_key(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"loss=[{option}]")
    assert list(cfg.loss) == [option]
    assert isinstance(instantiate(cfg.loss[option]), LossTerm)


def test_loss_selection_and_term_override(compose_cfg) -> None:
    cfg = compose_cfg("loss=[gram]", "loss.gram.weight=5", "content_loss.weight=0")
    assert list(cfg.loss) == ["gram"] and cfg.loss.gram.weight == 5 and cfg.content_loss.weight == 0


def test_content_loss_instantiates(compose_cfg) -> None:
    assert isinstance(instantiate(compose_cfg().content_loss), LossTerm)


@pytest.mark.parametrize("option", sorted(EXPECTED_GROUPS["method"]))
def test_method_options_instantiate(compose_cfg, option: str) -> None:
    assert isinstance(instantiate(compose_cfg(f"method={option}").method), Method)


@pytest.mark.parametrize("option", sorted(EXPECTED_GROUPS["optimizer"]))
def test_optimizer_options_build_an_optimizer(compose_cfg, option: str) -> None:
    factory = instantiate(compose_cfg(f"optimizer={option}").optimizer, _partial_=True)
    assert isinstance(factory([torch.nn.Parameter(torch.zeros(1))]), torch.optim.Optimizer)


@pytest.mark.parametrize("option", sorted(EXPECTED_GROUPS["logger"]))
def test_logger_options_instantiate(compose_cfg, option: str, tmp_path: Path) -> None:
    from stylefw.method import build_logger

    logger = build_logger(compose_cfg(f"logger={option}"), tmp_path)
    assert (logger is None) == (option == "none")
    if logger is not None:
        from stylefw.runtime.lightning import finish_logger as finish

        finish(logger, "success")


def test_trainer_options_are_trainer_kwargs(compose_cfg, tmp_path: Path) -> None:
    from stylefw.runtime.lightning import make_trainer

    trainer = make_trainer(compose_cfg().trainer, max_steps=1, logger=None, callbacks=[], log_every_n_steps=1,
                           default_root_dir=tmp_path)
    assert trainer.max_steps == 1


def test_config_resolves_without_hydra_runtime(compose_cfg) -> None:
    """The resolved config is what the PNG and config.yaml store; it must not need a Hydra run."""
    assert "content" in OmegaConf.to_yaml(compose_cfg(), resolve=True)
