"""The pure pretrain step: sample paths, take their gradients, apply a pure optimizer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from enot.functional import _layout, _prefix, _random, _sampling
from enot.functional._optim import Optimizer
from enot.functional._trees import ApplyFn

__all__ = [
    "SAMPLERS",
    "PretrainState",
    "next_architectures",
    "path_gradients",
    "pretrain_init",
    "pretrain_step",
]

SAMPLERS = ("fair", "uniform")
LossFn = Callable[[Any, Any], torch.Tensor]
ReduceFn = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]
InputsFn = Callable[[Any], tuple[tuple, dict]]


class PretrainState(NamedTuple):
    """Everything a pretrain step reads and writes.

    Attributes:
        params: Weights ``{name: tensor}``.
        buffers: Buffers ``{name: tensor}``.
        opt_state: State of the pure optimizer.
        key: Random key the next architectures are sampled from.
        step: Number of steps taken (0-d int64 tensor).
    """

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    opt_state: Any
    key: torch.Tensor
    step: torch.Tensor


def pretrain_init(
    params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], optimizer: Optimizer, key: torch.Tensor
) -> PretrainState:
    """The initial :class:`PretrainState`."""
    return PretrainState(dict(params), dict(buffers), optimizer.init(params), key, torch.zeros((), dtype=torch.int64))


def next_architectures(key: torch.Tensor, n_choices: Sequence[int], sampler: str) -> tuple[torch.Tensor, list[list[int]]]:
    """Splits ``key`` and samples the architectures of one gradient computation.

    Returns ``(new_key, architectures)``: one architecture for ``"uniform"``, ``max(n_choices)`` for
    ``"fair"``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    new_key, sub = _random.split(key)
    if sampler == "uniform":
        return new_key, [_sampling.uniform_architecture(sub, n_choices)]
    return new_key, _sampling.fair_architectures(sub, n_choices)


def _default_inputs(batch: Any) -> tuple[tuple, dict]:
    return (batch[0],), {}


def path_gradients(
    apply: ApplyFn,
    layout: _layout.SearchSpaceLayout,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architecture: Sequence[int],
    loss_fn: LossFn,
    batch: Any,
    sample_to_model_inputs: InputsFn = _default_inputs,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Gradients of ``loss_fn(apply(...), batch)`` with respect to the weights on one path.

    Returns ``(grads, new_buffers, loss)``; ``grads`` holds only the weights on the path that the
    loss depends on (others are absent, as ``.grad is None`` in ``torch.optim``).
    """
    cached = getattr(apply, "path_names", None)  # make_apply's cache of the same function
    on_path = cached(tuple(int(i) for i in architecture)) if cached else _layout.path_names(layout, architecture)
    names = [n for n in on_path if n in params]
    leaves = {n: params[n].detach().requires_grad_(True) for n in names}
    args, kwargs = sample_to_model_inputs(batch)
    with torch.enable_grad():
        output, new_buffers = apply({**params, **leaves}, buffers, architecture, *args, **kwargs)
        loss = loss_fn(output, batch)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {n: g for n, g in zip(names, grads) if g is not None}, new_buffers, loss.detach()


def _accumulate(total: dict[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> None:
    for name, grad in grads.items():
        total[name] = total[name] + grad if name in total else grad


def check_finite_loss(
    step: torch.Tensor, architecture: Sequence[int], loss: torch.Tensor, *, phase: str = "pretrain", kept: str = "weights"
) -> None:
    """Raises ``FloatingPointError`` naming the step and architecture if ``loss`` is not finite."""
    if not torch.isfinite(loss).all():
        raise FloatingPointError(
            f"{phase} step {int(step)}: the loss of architecture {architecture} is "
            f"{loss.item() if loss.numel() == 1 else loss}; {kept} were not updated"
        )



def pretrain_step(
    apply: ApplyFn,
    layout: _layout.SearchSpaceLayout,
    optimizer: Optimizer,
    loss_fn: LossFn,
    state: PretrainState,
    batches: Sequence[Any],
    *,
    sampler: str = "uniform",
    sample_to_model_inputs: InputsFn = _default_inputs,
    check_finite: bool = True,
    reduce_grads: ReduceFn | None = None,
    reduce_buffers: ReduceFn | None = None,
    share_prefix: bool = False,
) -> tuple[PretrainState, dict[str, Any]]:
    """One pretrain update over a ghost batch.

    For every batch in ``batches`` new architectures are sampled (``sampler``); the gradients of
    every (batch, architecture) pair are summed, then ``optimizer`` updates the weights that
    received a gradient.  Weights, optimizer state and buffers off the sampled paths are returned
    unchanged (the same tensor objects).

    Across processes, pass ``reduce_grads=reducer, reduce_buffers=reducer.reduce_buffers`` with
    ``reducer = enot.distributed.GradientReducer()``: the summed gradients ``{name: tensor}`` and the
    sampled paths' buffers go through them (each returns a new dict, here the mean over ranks) before
    the update.  ``None`` (default) leaves them as they are.  Every rank must hold the same
    ``state.key``, so that all sample the same paths.

    With ``share_prefix`` (useful with ``sampler="fair"``: several paths per batch) the modules the
    model calls before its first container run once per batch for all its paths: each path is
    differentiated down to their outputs and one backward through them takes the summed output
    gradients (``enot.functional._prefix``).  Gradients equal the unshared ones up to float
    summation order; the prefix's batch-norm statistics are updated once per batch instead of once
    per path.  It needs ``apply`` from :func:`make_apply` without ``compile`` and a prefix without
    randomness (dropout there would draw one mask for all paths).

    Returns:
        ``(new_state, info)`` with ``info = {"loss": mean loss (0-d tensor), "architectures": [...]}``.

    Raises:
        FloatingPointError: If ``check_finite`` and a loss is NaN or infinite; nothing is updated.  With
            ``reduce_grads`` the check runs after the reduction, on the reduced gradients too, so that
            every rank raises together (a NaN on one rank reaches all through the mean).
    """
    if not batches:
        raise ValueError("pretrain_step needs at least one batch")
    key, params, buffers = state.key, state.params, dict(state.buffers)
    grads: dict[str, torch.Tensor] = {}
    losses, architectures = [], []
    if share_prefix and getattr(apply, "search_space", None) is None:
        raise TypeError("share_prefix=True needs apply made by enot.functional.make_apply(search_space)")
    if share_prefix and getattr(apply, "compiled", False):
        raise ValueError("share_prefix=True needs an eager apply (make_apply(..., compile=False)): it hooks the "
                         "modules before the first container, which a compiled graph would bake in")
    for batch in batches:
        key, archs = next_architectures(key, layout.n_choices, sampler)
        shared = None
        if share_prefix and len(archs) > 1:
            args, kwargs = sample_to_model_inputs(batch)
            shared = _prefix.shared_path_gradients(apply, layout, params, buffers, archs, loss_fn, batch, args, kwargs)
        if shared is not None:
            path_grads, buffers, path_losses = shared
            if check_finite and reduce_grads is None:
                for arch, loss in zip(archs, path_losses):
                    check_finite_loss(state.step, arch, loss)
            _accumulate(grads, path_grads)
            losses.extend(path_losses)
            architectures.extend(archs)
            continue
        for arch in archs:
            path_grads, buffers, loss = path_gradients(
                apply, layout, params, buffers, arch, loss_fn, batch, sample_to_model_inputs
            )
            if check_finite and reduce_grads is None:
                check_finite_loss(state.step, arch, loss)
            _accumulate(grads, path_grads)
            losses.append(loss)
            architectures.append(arch)
    if reduce_grads is not None:
        grads = dict(reduce_grads(grads))
        if check_finite:
            for arch, loss in zip(architectures, losses):
                check_finite_loss(state.step, arch, loss)
            bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
            if bad:
                raise FloatingPointError(
                    f"pretrain step {int(state.step)}: the reduced gradients of {bad[:3]} are not finite "
                    "(a loss on another rank was NaN or infinite); weights were not updated"
                )
    if reduce_buffers is not None:
        on_paths = sorted({n for a in architectures for n in _layout.path_names(layout, a) if n in buffers})
        buffers.update(reduce_buffers({n: buffers[n] for n in on_paths}))
    new_params, opt_state = optimizer.update(grads, state.opt_state, params)
    new_state = PretrainState(new_params, buffers, opt_state, key, state.step + 1)
    return new_state, {"loss": torch.stack(losses).mean(), "architectures": architectures}
