"""stylefw's L-BFGS (plugins/optimizers/lbfgs.py) against torch.optim.LBFGS, the reference it departs from."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from stylefw.errors import StylefwError
from stylefw.plugins.optimizers.lbfgs import LBFGS


def smooth_problem(seed: int) -> tuple[torch.nn.Parameter, Callable[[], torch.Tensor]]:
    """A convex quadratic plus a quartic in float64, so every curvature pair is accepted."""
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(30, 30, generator=generator, dtype=torch.float64)
    hessian = matrix @ matrix.T + 30 * torch.eye(30, dtype=torch.float64)
    start = torch.randn(30, generator=generator, dtype=torch.float64)
    x = torch.nn.Parameter(start.clone())
    return x, lambda: 0.5 * x @ hessian @ x + (x ** 4).sum() + x.sum()


def closure_for(optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value
    return closure


@pytest.mark.parametrize("history_size", [1, 3, 20])
def test_same_steps_as_torch_lbfgs_on_a_smooth_problem(history_size: int) -> None:
    ours, our_loss = smooth_problem(0)
    theirs, their_loss = smooth_problem(0)
    our_optimizer = LBFGS([ours], history_size=history_size, max_step=None)
    their_optimizer = torch.optim.LBFGS([theirs], lr=1, max_iter=1, history_size=history_size,
                                        tolerance_grad=0, tolerance_change=0)
    first = our_loss().item()
    for _ in range(15):
        our_optimizer.step(closure_for(our_optimizer, our_loss))
        their_optimizer.step(closure_for(their_optimizer, their_loss))
        assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert our_loss().item() < 0.01 * first  # and it optimizes


def test_no_full_gradient_step_before_a_pair_is_accepted() -> None:
    """A flat function of large values: the cautious first step (lr/‖g‖₁ along −g) yields sᵀy = 2e-11, below
    1e-10, so the pair is skipped. torch then steps −g at full length; ours repeats the cautious step."""
    def problem() -> tuple[torch.nn.Parameter, Callable[[], torch.Tensor]]:
        x = torch.nn.Parameter(torch.full((100,), 1e8, dtype=torch.float64))
        return x, lambda: 1e-9 * (x ** 2).sum()  # gradient 0.2 per element, ‖g‖₁ = 20

    ours, our_loss = problem()
    theirs, their_loss = problem()
    our_optimizer = LBFGS([ours], max_step=None)
    their_optimizer = torch.optim.LBFGS([theirs], lr=1, max_iter=1)
    moves = []
    for optimizer, x, loss in ((our_optimizer, ours, our_loss), (their_optimizer, theirs, their_loss)):
        optimizer.step(closure_for(optimizer, loss))
        before = x.detach().clone()
        optimizer.step(closure_for(optimizer, loss))
        moves.append((x.detach() - before).abs().max().item())
    assert moves[1] == pytest.approx(0.2, rel=1e-6)  # torch: the whole gradient
    assert moves[0] == pytest.approx(0.2 / 20, rel=1e-6)  # ours: lr · min(1, 1/‖g‖₁) · g again
    assert not our_optimizer.state[ours]["pairs"]


def test_a_pair_records_where_the_parameters_went_not_the_step_taken() -> None:
    """The pixel method clamps after each step; the pair's s must be the change after that."""
    x, loss = smooth_problem(1)
    optimizer = LBFGS([x], max_step=None)
    for _ in range(3):
        optimizer.step(closure_for(optimizer, loss))
    before = x.detach().clone()
    optimizer.step(closure_for(optimizer, loss))
    taken = x.detach() - before
    with torch.no_grad():
        x.copy_(before + taken.clamp(-1e-3, 1e-3))  # as a clamp to the pixel range cuts a step short
    optimizer.step(closure_for(optimizer, loss))
    s, y, _ = optimizer.state[x]["pairs"][-1]
    assert torch.allclose(s, taken.clamp(-1e-3, 1e-3), rtol=0, atol=1e-15)
    assert (taken.abs() > 1e-3).any()  # the clamp did cut the step


def test_max_step_bounds_every_parameters_move() -> None:
    x, loss = smooth_problem(2)
    free, free_loss = smooth_problem(2)
    bounded_optimizer, free_optimizer = LBFGS([x], max_step=0.05), LBFGS([free], max_step=None)
    largest_free_move = 0.0
    for _ in range(10):
        before, free_before = x.detach().clone(), free.detach().clone()
        bounded_optimizer.step(closure_for(bounded_optimizer, loss))
        free_optimizer.step(closure_for(free_optimizer, free_loss))
        assert (x.detach() - before).abs().max().item() <= 0.05 + 1e-12
        largest_free_move = max(largest_free_move, (free.detach() - free_before).abs().max().item())
    assert largest_free_move > 0.5  # the bound was binding
    assert loss().item() < smooth_problem(2)[1]().item()  # and the bounded steps still descend


def test_bad_settings_are_refused() -> None:
    x = torch.nn.Parameter(torch.zeros(3))
    for settings in ({"lr": 0}, {"history_size": 0}, {"max_step": -1.0}):
        (key, value), = settings.items()
        with pytest.raises(StylefwError, match=f"^optimizer.{key}={value} must be a positive"):
            LBFGS([x], **settings)
