"""Shared work of several paths on one batch: the model before the first container runs once.

The modules a model calls before its first container (the stem of a MobileNet) compute the same
outputs on every path of a batch.  :func:`shared_path_gradients` runs them once: their outputs are
cut from the graph (each path sees detached leaves), every path's loss is differentiated down to
those leaves, and one backward through the prefix takes the sum of the paths' output gradients.
Gradients equal the per-path ones up to float summation order; the prefix's batch-norm running
statistics are updated once per batch (as in a plain training step) instead of once per path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from enot.functional._grads import add_gradients_
from enot.functional._replay import replaced_forwards
from enot.functional._trees import Apply
from enot.functional._types import LossFn, Tree

__all__ = ["prefix_modules", "shared_path_gradients"]

def prefix_modules(apply: Apply, params, buffers, architecture, args, kwargs) -> list[nn.Module]:
    """The outermost modules the model calls before it enters its first container (found once per
    ``apply`` by one forward without gradients on cloned buffers, then kept by ``apply.memo``)."""
    return apply.memo.prefix(lambda: _find_prefix(apply, params, buffers, architecture, args, kwargs))


def _find_prefix(apply: Apply, params, buffers, architecture, args, kwargs) -> list[nn.Module]:
    containers = {id(c) for c in apply.search_space.search_variants_containers}
    stack: list[nn.Module] = []
    chain: list[int] = []  # the modules on the call chain into the first container
    completed: list[tuple[nn.Module, int | None, Any]] = []

    def pre(module: nn.Module, _args: Any) -> None:
        if chain:
            return
        if id(module) in containers:
            chain.extend(id(m) for m in stack)
            return
        stack.append(module)

    def post(module: nn.Module, _args: Any, output: Any) -> None:
        if chain or not stack or stack[-1] is not module:
            return
        stack.pop()
        completed.append((module, id(stack[-1]) if stack else None, output))

    handles = [nn.modules.module.register_module_forward_pre_hook(pre),
               nn.modules.module.register_module_forward_hook(post)]
    try:
        with torch.no_grad():
            apply(params, buffers, architecture, *args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    found = [m for m, parent, out in completed if parent in set(chain) and id(m) not in set(chain)]
    if not chain or not all(isinstance(out, torch.Tensor) for m, parent, out in completed if m in found):
        found = []  # no container reached, or outputs that are not tensors: nothing is shared
    return found


@contextlib.contextmanager
def _recorded(prefix: list[nn.Module], outputs: dict[int, list[torch.Tensor]], order: list[tuple[int, int]]) -> Iterator[None]:
    """First path: the prefix runs; its outputs are kept and the rest of the model gets detached leaves."""

    def record(module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        outputs[id(module)].append(output)
        order.append((id(module), len(outputs[id(module)]) - 1))
        return output.detach().requires_grad_(True)

    handles = [m.register_forward_hook(record) for m in prefix]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _replayed(prefix: list[nn.Module], outputs: dict[int, list[torch.Tensor]]):  # noqa: ANN202
    """Later paths: the prefix does not run; each call returns a fresh leaf of the recorded output."""
    produce = {}
    for m in prefix:
        calls = iter(outputs[id(m)])
        produce[m] = lambda _calls=calls: next(_calls).detach().requires_grad_(True)
    return replaced_forwards(produce)


@contextlib.contextmanager
def _taking(prefix: list[nn.Module], taken: list[torch.Tensor]) -> Iterator[None]:
    """Collects the leaves a path sees (registered after ``record``, so it sees them)."""
    handles = [m.register_forward_hook(lambda m, a, out: taken.append(out)) for m in prefix]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def shared_path_gradients(
    apply: Apply,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architectures: Sequence[Sequence[int]],
    loss_fn: LossFn,
    batch: Any,
    args: tuple,
    kwargs: dict,
) -> tuple[Tree, Tree, list[torch.Tensor]] | None:
    """Summed gradients of ``loss_fn`` over ``architectures`` on one batch, the prefix run once.

    Returns ``(grads, new_buffers, losses)`` (losses detached, one per architecture), or ``None``
    when the model has no shareable prefix (the caller then computes the paths one by one).
    """
    prefix = prefix_modules(apply, params, buffers, architectures[0], args, kwargs)
    if not prefix:
        return None
    prefix_names = _prefix_weight_names(apply, prefix, params)
    prefix_set = set(prefix_names)
    all_names = sorted({n for a in architectures for n in apply.path_names(a) if n in params})
    leaves = {n: params[n].detach().requires_grad_(True) for n in all_names}
    weights = {**params, **leaves}
    outputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in prefix}
    order: list[tuple[int, int]] = []  # (module, call number) of every cached output, in call order
    out_grads: dict[int, torch.Tensor] = {}  # summed gradients of the prefix outputs, by call number
    grads: Tree = {}
    losses = []
    for p, arch in enumerate(architectures):
        taken: list[torch.Tensor] = []
        rest = [n for n in apply.path_names(arch) if n in leaves and n not in prefix_set]
        with _recorded(prefix, outputs, order) if p == 0 else _replayed(prefix, outputs), torch.enable_grad():
            with _taking(prefix, taken):
                output, buffers = apply(weights, buffers, arch, *args, **kwargs)
            loss = loss_fn(output, batch)
            result = torch.autograd.grad(loss, [leaves[n] for n in rest] + taken, allow_unused=True)
        add_gradients_(grads, dict(zip(rest, result[: len(rest)])))
        add_gradients_(out_grads, dict(enumerate(result[len(rest):])))
        losses.append(loss.detach())
    add_gradients_(grads, _prefix_gradients(outputs, order, out_grads, leaves, prefix_names))
    return grads, buffers, losses


def _prefix_weight_names(apply: Apply, prefix: list[nn.Module], params: Mapping[str, torch.Tensor]) -> list[str]:
    names_of = {id(m): n for n, m in apply.search_space.named_modules()}
    qualified = (f"{names_of[id(m)]}.{p}" for m in prefix for p, _ in m.named_parameters())
    return sorted({n for n in qualified if n in params})


def _prefix_gradients(
    outputs: dict[int, list[torch.Tensor]],
    order: list[tuple[int, int]],
    out_grads: dict[int, torch.Tensor],
    leaves: Tree,
    prefix_names: list[str],
) -> dict[str, torch.Tensor | None]:
    """One backward through the prefix with the paths' summed output gradients."""
    real = [outputs[m][k] for m, k in order]
    used = [(o, out_grads[i]) for i, o in enumerate(real) if i in out_grads]
    if not used or not prefix_names:
        return {}
    with torch.enable_grad():
        prefix_grads = torch.autograd.grad(
            [o for o, _ in used], [leaves[n] for n in prefix_names], [g for _, g in used], allow_unused=True
        )
    return dict(zip(prefix_names, prefix_grads))
