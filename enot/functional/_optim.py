"""Pure optimizer transforms in the style of optax: ``init(params)`` and ``update(grads, state, params)``.

Trees are ``dict[str, Tensor]`` keyed by parameter name.  ``update`` takes gradients for a *subset*
of the parameters (the sampled path): only those parameters and their state entries change,
exactly as ``torch.optim`` skips parameters whose ``.grad`` is ``None``.  It returns the new
parameters rather than additive updates so that every rounding step matches ``torch.optim``'s
single-tensor implementation bit for bit (float64 facade/functional equivalence rests on it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from enot.functional._validate import check_number

__all__ = ["AdamState", "Optimizer", "SGDState", "adam", "adamw", "sgd"]

Tree = Mapping[str, torch.Tensor]


class Optimizer(NamedTuple):
    """A pure optimizer: ``state = init(params)``; ``params, state = update(grads, state, params)``."""

    init: Callable[[Tree], Any]
    update: Callable[[Tree, Any, Tree], tuple[dict[str, torch.Tensor], Any]]


class SGDState(NamedTuple):
    """Per-parameter step counts (0-d int64) and momentum buffers."""

    count: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor]


class AdamState(NamedTuple):
    """Per-parameter step counts (0-d float32, as in ``torch.optim.Adam``) and moment estimates."""

    count: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        check_number(value, name, minimum=0, finite=False)


def _check_subset(grads: Tree, params: Tree) -> None:
    unknown = sorted(set(grads) - set(params))
    if unknown:
        raise ValueError(f"gradients given for unknown parameters {unknown[:5]}")


def sgd(
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    *,
    nesterov: bool = False,
) -> Optimizer:
    """Stochastic gradient descent with the semantics of ``torch.optim.SGD``.

    Raises:
        ValueError: On a negative hyper-parameter, or ``nesterov`` without momentum or with dampening.
    """
    _check_nonnegative(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov needs momentum > 0 and dampening == 0, got momentum={momentum}, dampening={dampening}")

    def init(params: Tree) -> SGDState:
        return SGDState(
            count={n: torch.zeros((), dtype=torch.int64, device=p.device) for n, p in params.items()},
            momentum={n: torch.zeros_like(p) for n, p in params.items()},
        )

    def update(grads: Tree, state: SGDState, params: Tree) -> tuple[dict[str, torch.Tensor], SGDState]:
        _check_subset(grads, params)
        new_params, count, buffers = dict(params), dict(state.count), dict(state.momentum)
        for name, grad in grads.items():
            param = params[name]
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            if momentum != 0:
                buf = buffers[name].mul(momentum).add(grad, alpha=1 - dampening)
                buf = torch.where(state.count[name] == 0, grad, buf)
                buffers[name] = buf
                grad = grad.add(buf, alpha=momentum) if nesterov else buf
            count[name] = state.count[name] + 1
            new_params[name] = param.add(grad, alpha=-lr)
        return new_params, SGDState(count, buffers)

    return Optimizer(init, update)


def _adam(lr: float, betas: tuple[float, float], eps: float, weight_decay: float, decoupled: bool) -> Optimizer:
    _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
    beta1, beta2 = betas
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must lie in [0, 1), got {beta!r}")

    def init(params: Tree) -> AdamState:
        return AdamState(
            count={n: torch.zeros((), dtype=torch.float32, device=p.device) for n, p in params.items()},
            exp_avg={n: torch.zeros_like(p) for n, p in params.items()},
            exp_avg_sq={n: torch.zeros_like(p) for n, p in params.items()},
        )

    def update(grads: Tree, state: AdamState, params: Tree) -> tuple[dict[str, torch.Tensor], AdamState]:
        _check_subset(grads, params)
        new_params, count = dict(params), dict(state.count)
        exp_avg, exp_avg_sq = dict(state.exp_avg), dict(state.exp_avg_sq)
        for name, grad in grads.items():
            param = params[name]
            step_t = state.count[name] + 1
            if weight_decay != 0:
                if decoupled:
                    param = param.mul(1 - lr * weight_decay)
                else:
                    grad = grad.add(param, alpha=weight_decay)
            m = state.exp_avg[name].lerp(grad, 1 - beta1)
            v = state.exp_avg_sq[name].mul(beta2).addcmul(grad, grad, value=1 - beta2)
            if torch.compiler.is_compiling():
                # Tensor arithmetic keeps the step count out of the guards (no recompiles per step).
                step = step_t.to(param.dtype)
                step_size = lr / (1 - beta1**step)
                denom = (v.sqrt() / (1 - beta2**step).sqrt()).add(eps)
                new_params[name] = param - step_size * (m / denom)
            else:
                step = step_t.item()
                step_size = lr / (1 - beta1**step)
                denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add(eps)
                new_params[name] = param.addcdiv(m, denom, value=-step_size)
            count[name], exp_avg[name], exp_avg_sq[name] = step_t, m, v
        return new_params, AdamState(count, exp_avg, exp_avg_sq)

    return Optimizer(init, update)


def adam(lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """Adam with the semantics of ``torch.optim.Adam`` (L2 penalty added to the gradient)."""
    return _adam(lr, betas, eps, weight_decay, decoupled=False)


def adamw(
    lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
) -> Optimizer:
    """AdamW with the semantics of ``torch.optim.AdamW`` (decoupled weight decay)."""
    return _adam(lr, betas, eps, weight_decay, decoupled=True)
