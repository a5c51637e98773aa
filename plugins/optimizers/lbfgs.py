"""L-BFGS for pixel optimisation: one objective evaluation per step, no full-length step without curvature.

torch's ``LBFGS`` starts with a cautious step, ``lr · min(1, 1/‖g‖₁)`` along ``−g``, then skips any
curvature pair with ``sᵀy ≤ 1e-10``. With the pixel method's losses (~1e8-1e9) that first step is so
short that the pair it yields is skipped, and torch then steps with the identity as inverse Hessian at
full length, ``−g``: pixels move by thousands of levels, the loss rises by orders of magnitude and the
run can end in texture with no subject (docs/performance.md has the measured cases). Three changes:

- While no pair has been accepted, every step is the cautious first step again.
- A pair's ``s`` is the parameters' actual change since the last step, not the step the optimizer
  took: the pixel method clamps the image to its range after each step, so for saturated pixels
  the two differ, and a pair built from the intended step claims curvature that is not there.
- ``max_step`` bounds how far any parameter moves in one step. Pairs from short early steps can
  still see almost no curvature and propose a huge step; the bound keeps such a step from wiping
  out the subject, while a bound much below it holds the style back.

Otherwise it is the textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4) with
``H₀ = sᵀy / yᵀy · I`` from the newest pair, as torch's ``LBFGS(max_iter=1)`` without line search:
on a smooth problem with no clamp the two take the same steps (test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

from stylefw.errors import check_number, check_whole_number

CURVATURE_FLOOR = 1e-10  # torch.optim.LBFGS's: a pair with sᵀy at or below it is skipped


class LBFGS(Optimizer):
    """Limited-memory BFGS, one closure evaluation per :meth:`step`.

    Args:
        params: the parameters (the pixel method's image and pyramid levels).
        lr: step length along the quasi-Newton direction (1: the full step, as torch's with ``max_iter=1``).
        history_size: curvature pairs kept.
        max_step: no parameter moves more than this in one step (the step is shortened along its direction);
            None: no bound. In the pixel method's units (0..255): 32 is an eighth of the range.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, history_size: int = 20,
                 max_step: float | None = 32.0) -> None:
        check_number("optimizer.lr", lr, above=0)
        check_whole_number("optimizer.history_size", history_size)
        check_number("optimizer.max_step", max_step, above=0, optional=True, hint="null: no bound")
        super().__init__(params, {"lr": lr, "history_size": history_size, "max_step": max_step})
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS takes one parameter group")

    def _params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def _flat(self, tensors: Iterable[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def _flat_grad(self) -> torch.Tensor:
        return self._flat(p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params())

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError("LBFGS needs a closure that evaluates the loss and its gradient")
        with torch.enable_grad():
            loss = closure()
        group, state = self.param_groups[0], self.state[self._params()[0]]  # torch's place for it
        position, gradient = self._flat(self._params()), self._flat_grad()  # fresh copies (torch.cat)
        pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = state.setdefault("pairs", [])
        if "position" in state:
            s, y = position - state["position"], gradient - state["gradient"]
            curvature = y.dot(s)
            if curvature > CURVATURE_FLOOR:
                if len(pairs) == group["history_size"]:
                    pairs.pop(0)
                pairs.append((s, y, 1.0 / curvature))
        direction = two_loop_direction(gradient, pairs)
        if pairs:
            length = group["lr"]
        else:  # no curvature yet: torch's cautious first step along −g
            length = min(1.0, 1.0 / float(gradient.abs().sum().clamp_min(1e-30))) * group["lr"]
        largest = float(direction.abs().max())
        if group["max_step"] is not None and length * largest > group["max_step"]:
            length = group["max_step"] / largest
        state["position"], state["gradient"] = position, gradient
        offset = 0
        for parameter in self._params():
            count = parameter.numel()
            parameter.add_(direction[offset:offset + count].view_as(parameter), alpha=length)
            offset += count
        return loss


def two_loop_direction(gradient: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
    """``−H g`` by the two-loop recursion over ``(s, y, 1/sᵀy)`` pairs, oldest first, with ``H₀ = sᵀy/yᵀy · I``
    from the newest pair (the identity before any)."""
    q = gradient.neg()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * s.dot(q)
        q.add_(y, alpha=-alpha)
        alphas.append(alpha)
    if pairs:
        s, y, rho = pairs[-1]
        q.mul_(1.0 / (rho * y.dot(y)))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        beta = rho * y.dot(q)
        q.add_(s, alpha=alpha - beta)
    return q
