"""Small search spaces on which the exact gradient of the expected loss is known by enumeration.

Used by the estimator tests (``tests/test_search_estimator.py``) and by
``benchmarks/estimator_bias.py``, which prints each estimator's measured bias on them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as Fn
from torch import nn

import enot.functional as ef
from enot.functional._search import logit_names
from enot.models import SearchSpaceModel, SearchVariantsContainer


class Scale(nn.Module):
    """Multiplies its input by ``factor`` (also the candidates of ``tests/_search_toys.py``)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Toy(NamedTuple):
    """A search space, its loss, one batch, logits, and an optional latency bound."""

    name: str
    space: SearchSpaceModel
    loss_fn: Callable[[Any, Any], torch.Tensor]
    batch: Any
    logits: tuple[torch.Tensor, ...]
    table: ef.LatencyTable | None
    bound: float | None


def _linear(n_in: int, n_out: int, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(n_in, n_out).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(n_out, n_in, generator=g, dtype=torch.float64) / n_in**0.5 * 1.5)
        layer.bias.copy_(torch.randn(n_out, generator=g, dtype=torch.float64) * 0.3)
    return nn.Sequential(layer, nn.Tanh())


def scale_toy() -> Toy:
    """The issue's toy: one container, MSE to the input, candidates scaling by 0.9, 1.25 and 0 (true
    losses 0.01, 0.0625 and 1 times the input's mean square); uniform logits."""
    space = SearchSpaceModel(nn.Sequential(SearchVariantsContainer([Scale(0.9), Scale(1.25), Scale(0.0)]))).double()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x / x.pow(2).mean().sqrt()  # mean square exactly 1
    return Toy("scale (MSE, 1 container)", space, lambda out, batch: Fn.mse_loss(out, batch[0]), (x,),
               (torch.zeros(3, dtype=torch.float64),), None, None)


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = SearchVariantsContainer([Scale(0.8), Scale(1.3)])
        self.second = SearchVariantsContainer([Scale(0.5), Scale(1.1)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first(x), self.second(x)


def additive_bounded_toy() -> Toy:
    """2x2, additive loss ``mse(y1, x) + mse(y2, x)``, the bound excludes the two dearer candidates
    together: the case where a container's logits change which choices of the other are feasible."""
    space = SearchSpaceModel(_TwoHeads()).double()
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(out: tuple[torch.Tensor, torch.Tensor], batch: Any) -> torch.Tensor:
        return Fn.mse_loss(out[0], batch[0]) + Fn.mse_loss(out[1], batch[0])

    table = ef.latency_table(0.0, [[1.0, 2.0], [1.0, 2.0]])
    logits = (torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([-0.4, 0.5], dtype=torch.float64))
    return Toy("additive 2x2, bounded", space, loss, (x,), logits, table, 3.0)


def composed_toy(loss: str, bounded: bool, n_containers: int = 3) -> Toy:
    """``n_containers`` containers in series, three candidates each (two tanh layers and the identity),
    a fixed head; cross-entropy to fixed labels or MSE to a fixed target; optionally a latency bound
    that excludes the dearest architectures."""
    dim = 6
    blocks = [
        SearchVariantsContainer([_linear(dim, dim, 10 * c + 1), _linear(dim, dim, 10 * c + 2), nn.Identity()])
        for c in range(n_containers)
    ]
    head = _linear(dim, 4, 99)[0]
    space = SearchSpaceModel(nn.Sequential(*blocks, head)).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(32, dim, generator=g, dtype=torch.float64)
    if loss == "ce":
        batch = (x, torch.randint(0, 4, (32,), generator=g))
        loss_fn = lambda out, b: Fn.cross_entropy(out, b[1])  # noqa: E731
    else:
        batch = (x, torch.randn(32, 4, generator=g, dtype=torch.float64))
        loss_fn = lambda out, b: Fn.mse_loss(out, b[1])  # noqa: E731
    logits = tuple(torch.randn(3, generator=g, dtype=torch.float64) * 0.7 for _ in range(n_containers))
    table = ef.latency_table(0.0, [[2.0, 3.0, 0.5]] * n_containers) if bounded else None
    bound = 2.0 * n_containers - 0.5 if bounded else None
    name = f"{n_containers} composed, {'cross-entropy' if loss == 'ce' else 'MSE'}, {'bounded' if bounded else 'unbounded'}"
    return Toy(name, space, loss_fn, batch, logits, table, bound)


def all_toys() -> list[Toy]:
    return [scale_toy(), additive_bounded_toy()] + [
        composed_toy(loss, bounded) for loss in ("ce", "mse") for bounded in (False, True)
    ]


def exact_gradient(toy: Toy) -> tuple[torch.Tensor, ...]:
    """``grad E_pi[L]`` by enumeration: ``pi`` is ``softmax(logits)`` restricted to the bound."""
    trees = ef.split_search_space(toy.space)
    apply = ef.make_apply(toy.space)
    leaves = tuple(l.detach().clone().requires_grad_(True) for l in toy.logits)
    log_p = [torch.log_softmax(l, 0) for l in leaves]
    weights, losses = [], []
    for a in itertools.product(*(range(l.numel()) for l in leaves)):
        if toy.bound is not None and float(ef.architecture_latency(list(a), toy.table)) > toy.bound:
            continue
        with torch.no_grad():
            out, _ = apply(trees.params, trees.buffers, list(a), toy.batch[0])
            losses.append(toy.loss_fn(out, toy.batch))
        weights.append(sum(lp[k] for lp, k in zip(log_p, a)))
    pi = torch.softmax(torch.stack(weights), 0)  # p(a) / Z over the feasible set
    expected = (pi * torch.stack(losses)).sum()
    return torch.autograd.grad(expected, leaves)


def estimator_draws(toy: Toy, estimator: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` single-draw estimates of the gradient, flattened: shape ``(n, sum(n_choices))``."""
    trees = ef.split_search_space(toy.space)
    apply = ef.make_apply(toy.space)
    key = ef.random.key(seed)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    try:
        rows = _draws(toy, estimator, n, key, trees, apply)
    finally:
        torch.set_num_threads(threads)
    return torch.stack(rows)


def _draws(toy: Toy, estimator: str, n: int, key: torch.Tensor, trees: Any, apply: Any) -> list[torch.Tensor]:
    rows = []
    for _ in range(n):
        key, sample = ef.next_search_sample(key, toy.logits, toy.table, toy.bound, estimator=estimator)
        grads, _, _ = ef.search_gradients(apply, trees.params, trees.buffers, toy.logits, sample, toy.loss_fn, toy.batch)
        names = logit_names(len(toy.logits))
        rows.append(torch.cat([grads.get(nm, torch.zeros_like(l)) for nm, l in zip(names, toy.logits)]))
    return rows
