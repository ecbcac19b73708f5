"""The pure pretrain step: sample paths, take their gradients, apply a pure optimizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from enot.functional import _prefix, _random, _samplers, _sandwich
from enot.functional._grads import add_gradients_, reduce_and_check
from enot.functional._optim import Optimizer
from enot.functional._trees import Apply
from enot.functional._types import InputsFn, LossFn, ReduceFn, Tree, default_sample_to_model_inputs

__all__ = [
    "PretrainState",
    "next_architectures",
    "path_gradients",
    "pretrain_init",
    "pretrain_step",
]


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

    ``sampler`` names a registered sampler that needs ``n_choices`` only
    (``available_samplers(given=())``; built in: ``"uniform"``, one architecture, and ``"fair"``,
    ``max(n_choices)`` of them).

    Returns ``(new_key, architectures)``.
    """
    if sampler not in _samplers.available_samplers(given=()):
        raise ValueError(f"sampler must be one of {_samplers.available_samplers(given=())}, got {sampler!r}")
    new_key, sub = _random.split(key)
    return new_key, _samplers.sample_architectures(sub, sampler, _samplers.SamplingInputs(tuple(n_choices)))


def path_gradients(
    apply: Apply,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architecture: Sequence[int],
    loss_fn: LossFn,
    batch: Any,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
) -> tuple[Tree, Tree, torch.Tensor]:
    """Gradients of ``loss_fn(apply(...), batch)`` with respect to the weights on one path.

    Returns ``(grads, new_buffers, loss)``; ``grads`` holds only the weights on the path that the
    loss depends on (others are absent, as ``.grad is None`` in ``torch.optim``).
    """
    grads, new_buffers, loss, _ = _path_gradients(
        apply, params, buffers, architecture, lambda output: loss_fn(output, batch), batch, sample_to_model_inputs
    )
    return grads, new_buffers, loss


def _path_gradients(apply, params, buffers, architecture, loss_of_output, batch, sample_to_model_inputs):
    """:func:`path_gradients` with the loss a function of the output; also returns the detached output."""
    names = [n for n in apply.path_names(architecture) if n in params]
    leaves = {n: params[n].detach().requires_grad_(True) for n in names}
    args, kwargs = sample_to_model_inputs(batch)
    with torch.enable_grad():
        output, new_buffers = apply({**params, **leaves}, buffers, architecture, *args, **kwargs)
        loss = loss_of_output(output)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    output = output.detach() if isinstance(output, torch.Tensor) else output
    return {n: g for n, g in zip(names, grads) if g is not None}, new_buffers, loss.detach(), output


def _add_sandwich_gradients_(grads, apply, params, buffers, architectures, loss_fn, batch, sample_to_model_inputs,
                             sandwich):
    """The sandwich rule on one batch: the first path (the largest) on ``loss_fn``, the others on
    ``loss_fn`` or, with ``sandwich.distill``, on the distillation loss against its output."""
    losses, teacher = [], None
    for i, architecture in enumerate(architectures):
        if i == 0 or not sandwich.distill:
            loss_of_output = lambda output: loss_fn(output, batch)  # noqa: E731
        else:
            loss_of_output = lambda output: _sandwich.distillation_loss(output, teacher, sandwich.temperature)  # noqa: E731
        path_grads, buffers, loss, output = _path_gradients(
            apply, params, buffers, architecture, loss_of_output, batch, sample_to_model_inputs
        )
        if i == 0:
            teacher = output
        add_gradients_(grads, path_grads)
        losses.append(loss)
    return buffers, losses


def _check_apply(apply: Any, share_prefix: bool) -> None:
    if not isinstance(apply, Apply):
        raise TypeError(
            f"pretrain_step expects the Apply made by enot.functional.make_apply(search_space), got {apply!r}"
        )
    if share_prefix and apply.compiled:
        raise ValueError("share_prefix=True needs an eager apply (make_apply(..., compile=False)): it hooks the "
                         "modules before the first container, which a compiled graph would bake in")


def _add_batch_gradients_(
    grads: Tree,
    apply: Apply,
    params: Tree,
    buffers: Tree,
    architectures: list[list[int]],
    loss_fn: LossFn,
    batch: Any,
    sample_to_model_inputs: InputsFn,
    share_prefix: bool,
) -> tuple[Tree, list[torch.Tensor]]:
    """Adds the gradients of every path on one batch into ``grads`` (path by path, in order);
    returns ``(new_buffers, losses)``."""
    if share_prefix and len(architectures) > 1:
        args, kwargs = sample_to_model_inputs(batch)
        shared = _prefix.shared_path_gradients(apply, params, buffers, architectures, loss_fn, batch, args, kwargs)
        if shared is not None:
            shared_grads, buffers, losses = shared
            add_gradients_(grads, shared_grads)
            return buffers, losses
    losses = []
    for architecture in architectures:
        path_grads, buffers, loss = path_gradients(
            apply, params, buffers, architecture, loss_fn, batch, sample_to_model_inputs
        )
        add_gradients_(grads, path_grads)
        losses.append(loss)
    return buffers, losses


def pretrain_step(
    apply: Apply,
    optimizer: Optimizer,
    loss_fn: LossFn,
    state: PretrainState,
    batches: Sequence[Any],
    *,
    sampler: str = "uniform",
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    check_finite: bool = True,
    reduce_grads: ReduceFn | None = None,
    reduce_buffers: ReduceFn | None = None,
    share_prefix: bool = False,
    sandwich: _sandwich.Sandwich | None = None,
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
    per path.  It needs an eager ``apply`` (``make_apply`` without ``compile``) and a prefix without
    randomness (dropout there would draw one mask for all paths).

    With ``sandwich`` (an :class:`enot.functional.Sandwich`; ``sampler`` is then unused and must stay
    ``"uniform"``) every batch trains ``sandwich.largest`` on ``loss_fn``, then ``sandwich.smallest``
    and ``sandwich.n_random`` uniform paths (:func:`sandwich_architectures`), with ``sandwich.distill``
    on :func:`distillation_loss` against the largest path's detached output on that batch (in-place
    distillation) instead of ``loss_fn``.  ``info["loss"]`` is then the mean over those path losses.

    Args:
        apply: The pure forward, from :func:`make_apply` (the same first argument as :func:`search_step`).
        optimizer: Pure optimizer over the weights.
        loss_fn: ``loss_fn(output, batch) -> scalar``.
        state: The :class:`PretrainState`.
        batches: Dataloader items of the ghost batch.

    Returns:
        ``(new_state, info)`` with ``info = {"loss": mean loss (0-d tensor), "architectures": [...]}``.

    Raises:
        TypeError: If ``apply`` was not made by :func:`make_apply`.
        ValueError: If ``batches`` is empty, ``share_prefix`` with a compiled ``apply``, or ``sandwich``
            with ``share_prefix`` or another ``sampler``, or a bad ``sandwich`` field.
        FloatingPointError: If ``check_finite`` and a loss is NaN or infinite; nothing is updated.  With
            ``reduce_grads`` the check runs after the reduction, on the reduced gradients too, so that
            every rank raises together (a NaN on one rank reaches all through the mean).
    """
    if not batches:
        raise ValueError("pretrain_step needs at least one batch")
    _check_apply(apply, share_prefix)
    if sandwich is not None:
        sandwich = _sandwich.check_sandwich(sandwich, apply.layout.n_choices)
        if share_prefix or sampler != "uniform":
            raise ValueError(f"sandwich replaces the sampler and does not share the prefix; got sampler={sampler!r}, "
                             f"share_prefix={share_prefix!r}")
    key, params, buffers = state.key, state.params, dict(state.buffers)
    grads: Tree = {}
    losses, architectures = [], []
    for batch in batches:
        if sandwich is not None:
            key, archs = _sandwich.sandwich_architectures(key, apply.layout.n_choices, sandwich)
            buffers, batch_losses = _add_sandwich_gradients_(
                grads, apply, params, buffers, archs, loss_fn, batch, sample_to_model_inputs, sandwich
            )
        else:
            key, archs = next_architectures(key, apply.layout.n_choices, sampler)
            buffers, batch_losses = _add_batch_gradients_(
                grads, apply, params, buffers, archs, loss_fn, batch, sample_to_model_inputs, share_prefix
            )
        losses.extend(batch_losses)
        architectures.extend(archs)
    grads = reduce_and_check(
        grads, architectures, losses, step=state.step, phase="pretrain", kept="weights",
        check_finite=check_finite, reduce_grads=reduce_grads,
    )
    if reduce_buffers is not None:
        on_paths = sorted({n for a in architectures for n in apply.path_names(a) if n in buffers})
        buffers.update(reduce_buffers({n: buffers[n] for n in on_paths}))
    new_params, opt_state = optimizer.update(grads, state.opt_state, params)
    new_state = PretrainState(new_params, buffers, opt_state, key, state.step + 1)
    return new_state, {"loss": torch.stack(losses).mean(), "architectures": architectures}
