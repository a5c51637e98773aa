"""RunContext builds what a method asks for, once, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylefw.method import RunContext


def test_nothing_is_built_until_asked_and_then_only_once(compose_cfg, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.method as context_module

    built: list[str] = []
    original = context_module.build

    def counting_build(node, what, **kwargs):
        built.append(what)
        return original(node, what, **kwargs)

    monkeypatch.setattr(context_module, "build", counting_build)
    context = RunContext(compose_cfg(), tmp_path)
    assert context.content.shape[-2:] == (32, 32) and built == []  # images alone build no plugin
    assert context.objective is context.objective
    terms = ["content_loss", "loss.gram", "loss.tv"]
    assert built == ["backbone", *terms]
    assert context.optimizer is context.optimizer
    assert built == ["backbone", *terms, "optimizer"]
