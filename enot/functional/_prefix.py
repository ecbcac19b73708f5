"""Shared work of several paths on one batch: the model before the first container runs once.

The modules a model calls before its first container (the stem of a MobileNet) compute the same
outputs on every path of a batch.  :func:`shared_path_gradients` runs them once: their outputs are
cut from the graph (each path sees detached leaves), every path's loss is differentiated down to
those leaves, and one backward through the prefix takes the sum of the paths' output gradients.
Gradients equal the per-path ones up to float summation order; the prefix's batch-norm running
statistics are updated once per batch (as in a plain training step) instead of once per path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from enot.functional import _layout

__all__ = ["prefix_modules", "shared_path_gradients"]

LossFn = Callable[[Any, Any], torch.Tensor]


def prefix_modules(apply: Callable[..., Any], params, buffers, architecture, args, kwargs) -> list[nn.Module]:
    """The outermost modules the model calls before it enters its first container (found once per
    ``apply`` by one forward without gradients on cloned buffers, then cached on ``apply``)."""
    cached = getattr(apply, "_enot_prefix_modules", None)
    if cached is not None:
        return cached
    space = apply.search_space
    containers = {id(c) for c in space.search_variants_containers}
    stack: list[nn.Module] = []
    chain: list[int] = []
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
    apply._enot_prefix_modules = found
    return found


def shared_path_gradients(
    apply: Callable[..., Any],
    layout: _layout.SearchSpaceLayout,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architectures: Sequence[Sequence[int]],
    loss_fn: LossFn,
    batch: Any,
    args: tuple,
    kwargs: dict,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[torch.Tensor]] | None:
    """Summed gradients of ``loss_fn`` over ``architectures`` on one batch, the prefix run once.

    Returns ``(grads, new_buffers, losses)`` (losses detached, one per architecture), or ``None``
    when the model has no shareable prefix (the caller then computes the paths one by one).
    """
    prefix = prefix_modules(apply, params, buffers, architectures[0], args, kwargs)
    if not prefix:
        return None
    names_of = {id(m): n for n, m in apply.search_space.named_modules()}
    prefix_names = sorted({
        f"{names_of[id(m)]}.{p}" for m in prefix for p, _ in m.named_parameters() if f"{names_of[id(m)]}.{p}" in params
    })
    prefix_set = set(prefix_names)
    all_names = sorted({n for a in architectures for n in _layout.path_names(layout, a) if n in params})
    leaves = {n: params[n].detach().requires_grad_(True) for n in all_names}
    weights = {**params, **leaves}
    outputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in prefix}
    order: list[tuple[int, int]] = []  # (module, call number) of every cached output, in call order
    out_grads: list[torch.Tensor | None] = []
    grads: dict[str, torch.Tensor] = {}
    losses = []

    def record(module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        outputs[id(module)].append(output)
        order.append((id(module), len(outputs[id(module)]) - 1))
        return output.detach().requires_grad_(True)

    for p, arch in enumerate(architectures):
        taken: list[torch.Tensor] = []
        if p == 0:
            handles = [m.register_forward_hook(record) for m in prefix]
        else:
            saved = [(m, m.__dict__.get("forward")) for m in prefix]
            for m in prefix:
                calls = iter(outputs[id(m)])
                m.forward = lambda *a, _calls=calls, **k: next(_calls).detach().requires_grad_(True)
        try:
            with torch.enable_grad():
                # Collects the leaves this path sees (registered after ``record``, so it sees them).
                taking = [m.register_forward_hook(lambda m, a, out: taken.append(out)) for m in prefix]
                try:
                    output, buffers = apply(weights, buffers, arch, *args, **kwargs)
                finally:
                    for h in taking:
                        h.remove()
                loss = loss_fn(output, batch)
                rest = [n for n in _layout.path_names(layout, arch) if n in leaves and n not in prefix_set]
                result = torch.autograd.grad(loss, [leaves[n] for n in rest] + taken, allow_unused=True)
        finally:
            if p == 0:
                for h in handles:
                    h.remove()
            else:
                for m, forward in saved:
                    if forward is None:
                        del m.forward
                    else:
                        m.forward = forward
        for n, g in zip(rest, result[: len(rest)]):
            if g is not None:
                grads[n] = grads[n] + g if n in grads else g
        for i, g in enumerate(result[len(rest):]):
            if len(out_grads) <= i:
                out_grads.append(g)
            elif g is not None:
                out_grads[i] = g if out_grads[i] is None else out_grads[i] + g
        losses.append(loss.detach())
    real = [outputs[m][k] for m, k in order]
    used = [(o, g) for o, g in zip(real, out_grads) if g is not None]
    if used and prefix_names:
        with torch.enable_grad():
            prefix_grads = torch.autograd.grad(
                [o for o, _ in used], [leaves[n] for n in prefix_names], [g for _, g in used], allow_unused=True
            )
        for n, g in zip(prefix_names, prefix_grads):
            if g is not None:
                grads[n] = grads[n] + g if n in grads else g
    return grads, buffers, losses
