"""The pure search step: gradients of the expected loss with respect to the architecture logits.

The estimator is an object (``enot.functional._estimator.Estimator``) registered once by name:
``"two_path"`` (default, unbiased: :mod:`enot.functional._two_path`) and ``"first_order"`` (the
paired-candidate estimator of earlier versions: :mod:`enot.functional._first_order`).  The
batch-norm scheme is a :class:`~enot.functional.BNScheme` (``"fresh"``, ``"cached"``).  The facade's
``EnotSearchOptimizer`` uses the same two objects (``docs/design.md``, "Search (phase 2)").
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from enot.functional import _bn, _latency, _layout
from enot.functional._bn_scheme import BN_CACHE_SIZE, BN_SCHEMES, BNCacheEntry, BNScheme, cached_tuned_buffers
from enot.functional._estimator import (
    Estimator,
    available_estimators,
    estimator_of,
    get_estimator,
    register_estimator,
)
from enot.functional._first_order import FirstOrder, FirstOrderSample, installed_hooks, paired_hooks
from enot.functional._grads import add_gradients_, reduce_and_check
from enot.functional._optim import Optimizer
from enot.functional._trees import Apply, make_apply
from enot.functional._two_path import TwoPath, TwoPathSample, two_path_output
from enot.functional._types import InputsFn, LossFn, ReduceFn, default_sample_to_model_inputs

__all__ = [
    "BNCacheEntry",
    "BN_CACHE_SIZE",
    "BN_SCHEMES",
    "ESTIMATORS",
    "SearchConfig",
    "SearchSample",
    "SearchState",
    "cached_tuned_buffers",
    "installed_hooks",
    "logit_names",
    "next_search_sample",
    "paired_hooks",
    "search_config",
    "search_gradients",
    "search_init",
    "search_step",
    "two_path_output",
]

# The estimator registry: one line per estimator, the default first (docs/design.md, "Adding an estimator").
register_estimator(TwoPath())
register_estimator(FirstOrder())

ESTIMATORS = available_estimators()  # the names of the estimators above


class SearchState(NamedTuple):
    """Everything a search step reads and writes (the weights are an argument: search never changes them).

    Attributes:
        buffers: Buffers ``{name: tensor}`` (batch-norm statistics of the sampled paths change).
        logits: Architecture logits, one 1-D tensor per container.
        opt_state: State of the pure optimizer over :func:`logit_names`-keyed logits.
        key: Random key the next sample is drawn from.
        step: Number of steps taken (0-d int64 tensor).
        bn_cache: ``bn_scheme="cached"``: per architecture (a tuple), its path's batch-norm statistics
            and the number of batches they average, least recently used first; ``None`` before the
            first cached step.  Valid for the weights it was tuned with (search never changes them).
    """

    buffers: dict[str, torch.Tensor]
    logits: tuple[torch.Tensor, ...]
    opt_state: Any
    key: torch.Tensor
    step: torch.Tensor
    bn_cache: Mapping[tuple[int, ...], BNCacheEntry] | None = None


class SearchSample(NamedTuple):
    """The combined sample of earlier versions, still accepted by :func:`search_gradients`,
    :func:`two_path_output` and :func:`paired_hooks`.

    :func:`next_search_sample` returns the estimator's own type instead (``TwoPathSample``:
    ``architecture, alternatives, position``; ``FirstOrderSample``: ``architecture, alternatives,
    importance_weights, masks``); ``estimator`` names which one this converts to.
    """

    architecture: list[int]
    alternatives: list[int]
    importance_weights: list[float]
    masks: list[torch.Tensor]
    estimator: str = "two_path"
    position: float = 0.0


def _own_sample(sample: Any) -> tuple[Any, Estimator]:
    """``(sample, its estimator)``; a :class:`SearchSample` becomes its estimator's own type."""
    if isinstance(sample, SearchSample):
        estimator = get_estimator(sample.estimator, what="search estimator")
        if estimator.sample_type is TwoPathSample:
            return TwoPathSample(list(sample.architecture), list(sample.alternatives), sample.position), estimator
        if estimator.sample_type is FirstOrderSample:
            own = FirstOrderSample(list(sample.architecture), list(sample.alternatives),
                                   list(sample.importance_weights), list(sample.masks))
            return own, estimator
        raise TypeError(f"a SearchSample cannot hold a {sample.estimator!r} sample; pass the estimator's own sample")
    return sample, estimator_of(sample)


def logit_names(n_containers: int) -> list[str]:
    """Keys of the logits in optimizer trees: ``architecture_logits.<c>``, as ``SearchSpaceModel`` names them."""
    return [f"architecture_logits.{c}" for c in range(n_containers)]


def search_init(
    buffers: Mapping[str, torch.Tensor], logits: Sequence[torch.Tensor], optimizer: Optimizer, key: torch.Tensor
) -> SearchState:
    """The initial :class:`SearchState`; ``optimizer`` updates the logits."""
    logits = tuple(logits)
    opt_state = optimizer.init(dict(zip(logit_names(len(logits)), logits)))
    return SearchState(dict(buffers), logits, opt_state, key, torch.zeros((), dtype=torch.int64))


def next_search_sample(
    key: torch.Tensor,
    logits: Sequence[torch.Tensor],
    table: _latency.LatencyTable | None = None,
    max_latency: float | None = None,
    *,
    estimator: str | Estimator = "two_path",
) -> tuple[torch.Tensor, Any]:
    """Splits ``key`` and samples what one gradient computation needs (``estimator.draw``).

    The path ``a`` is drawn from ``softmax(logits)`` (restricted exactly to ``latency <= max_latency``
    when a bound is given).  ``"two_path"``: a second architecture ``b`` from the same distribution,
    independently, and the point ``s ~ U(0, 1)`` (a ``TwoPathSample``).  ``"first_order"``: container
    ``c``'s comparison distribution ``q_c`` is its softmax restricted to the candidates that keep
    ``a`` feasible; the alternative ``j_c`` is drawn from ``q_c`` conditioned on ``j_c != a_c`` and
    weighted by ``1 - q_c(a_c)`` (a ``FirstOrderSample``).

    Returns:
        ``(new_key, sample)``.

    Raises:
        ValueError: On an unknown ``estimator``, a bound without a table, or a bound no architecture
            of positive probability meets.
    """
    return get_estimator(estimator, what="search estimator").draw(key, logits, table, max_latency)


class SearchConfig(NamedTuple):
    """What a search step is configured with, fixed once (make it with :func:`search_config`).

    Attributes:
        estimator: The :class:`~enot.functional.Estimator` (default ``"two_path"``'s).
        bn_scheme: The :class:`~enot.functional.BNScheme` used when the step gets ``bn_tune_data``.
        table: Latency table (needed with ``max_latency``, ``latency_weight`` or ``latency_loss_weight``).
        max_latency: Sample only architectures within this latency (``None``: no bound).
        latency_weight: Weight of ``expected_latency(logits, table)`` added to the loss.
        latency_loss_weight: Weight of :func:`latency_penalty` added to the loss (needs ``max_latency``).
        sample_to_model_inputs: Maps one dataloader item to ``(args, kwargs)``.
        check_finite: Raise on a non-finite loss.
        reduce_grads: Across processes, applied to the summed logit gradients before the update.
        reduce_buffers: Across processes, applied to each side's freshly tuned batch-norm buffers.
    """

    estimator: Estimator
    bn_scheme: BNScheme
    table: _latency.LatencyTable | None = None
    max_latency: float | None = None
    latency_weight: float = 0.0
    latency_loss_weight: float = 0.0
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs
    check_finite: bool = True
    reduce_grads: ReduceFn | None = None
    reduce_buffers: ReduceFn | None = None


def search_config(
    *,
    estimator: str | Estimator = "two_path",
    bn_scheme: str | BNScheme = "fresh",
    bn_tune_batches: int = 10,
    table: _latency.LatencyTable | None = None,
    max_latency: float | None = None,
    latency_weight: float = 0.0,
    latency_loss_weight: float = 0.0,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    check_finite: bool = True,
    reduce_grads: ReduceFn | None = None,
    reduce_buffers: ReduceFn | None = None,
) -> SearchConfig:
    """The :class:`SearchConfig` of a search: names parsed into objects, options checked once.

    Args:
        estimator: ``"two_path"`` (default, unbiased), ``"first_order"``, another registered name
            (``ef.ESTIMATORS``) or an :class:`~enot.functional.Estimator`.
        bn_scheme: ``"fresh"`` (default): each side's statistics recomputed from reset on
            ``bn_tune_data[b]`` at every step.  ``"cached"``: each side's statistics kept per
            architecture in ``state.bn_cache`` and refined with ``bn_tune_data[b]`` (give one item per
            batch) while they average fewer than ``bn_tune_batches`` batches, reused after
            (:func:`cached_tuned_buffers`); not with ``reduce_buffers``.  Or a
            :class:`~enot.functional.BNScheme`.
        bn_tune_batches: ``"cached"``: batches an architecture's statistics average before they are
            reused without tuning.
        table, max_latency, latency_weight, latency_loss_weight, sample_to_model_inputs, check_finite:
            As in :class:`SearchConfig`.
        reduce_grads: Across processes (``enot.distributed.GradientReducer()``: the mean over ranks).
        reduce_buffers: Across processes (``functools.partial(reducer.reduce_buffers, sum_counters=True)``).
            Every rank must hold the same ``state.key``.

    Raises:
        ValueError: On an unknown estimator or scheme, or ``"cached"`` with ``reduce_buffers``.
    """
    scheme = BNScheme.parse(bn_scheme, bn_tune_batches)
    scheme.check_reduce(reduce_buffers)
    return SearchConfig(
        get_estimator(estimator, what="search estimator"), scheme, table, max_latency, latency_weight,
        latency_loss_weight, sample_to_model_inputs, check_finite, reduce_grads, reduce_buffers,
    )


def _config(config: SearchConfig | None, options: Mapping[str, Any], where: str) -> SearchConfig:
    """``config``, or one made from the keywords of earlier versions (``table=...``, ``estimator=...``)."""
    if config is None:
        try:
            return search_config(**options)
        except TypeError as error:
            raise TypeError(f"{where}: {error}; the options are those of enot.functional.search_config") from None
    if options:
        raise TypeError(f"{where}: give the options either in config=search_config(...) or as keywords, "
                        f"not both (got config and {sorted(options)})")
    if not isinstance(config, SearchConfig):
        raise TypeError(f"{where}: config must be made by enot.functional.search_config, got {config!r}")
    return config


def search_gradients(
    apply: Apply | nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    logits: Sequence[torch.Tensor],
    sample: Any,
    loss_fn: LossFn,
    batch: Any,
    *,
    frozen_bn: bool = False,
    other_buffers: Mapping[str, torch.Tensor] | None = None,
    config: SearchConfig | None = None,
    **options: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Gradient estimate of the loss with respect to the logits, on one batch and one sample.

    The loss is ``loss_fn(output, batch)`` plus ``latency_weight * expected_latency(logits, table)``
    plus ``latency_penalty(logits, table, max_latency, latency_loss_weight)`` (when the weights are
    non-zero).  Path ``sample.architecture`` runs inside its estimator's output mixing
    (``Estimator.installed``): ``"two_path"`` also runs ``sample.alternatives`` without gradients on
    ``other_buffers`` (its changes dropped) and the loss sees :func:`two_path_output`;
    ``"first_order"`` runs the paired hooks (the alternatives on their buffers in ``other_buffers``).
    Weights get no gradient.

    Args:
        apply: The pure forward (:func:`make_apply`), or the search space (then made here).
        params, buffers: Trees of the path's forward; only read.
        logits: One tensor per container; the gradients are with respect to these.
        sample: From :func:`next_search_sample` (its type names the estimator).
        loss_fn, batch: ``loss_fn(output, batch) -> scalar``.
        frozen_bn: Run every batch norm in evaluation mode (after tuning).
        other_buffers: Buffers of the other side (its tuned batch-norm statistics); ``None``: ``buffers``.
        config: A :class:`SearchConfig` (its estimator and scheme are not used here), or the keywords
            ``table``, ``latency_weight``, ``max_latency``, ``latency_loss_weight``,
            ``sample_to_model_inputs`` of :func:`search_config`.

    Returns:
        ``(grads, new_buffers, loss)``: gradients keyed by :func:`logit_names` (``"two_path"``: every
        container's, exactly zero where ``a`` and ``b`` agree; ``"first_order"``: only for the logits
        the loss depends on, as ``.grad`` stays ``None`` in PyTorch for the others), the buffers after
        path ``a``'s forward, the loss (detached).
    """
    config = _config(config, options, "search_gradients")
    apply = apply if isinstance(apply, Apply) else make_apply(apply)
    sample, estimator = _own_sample(sample)
    leaves = tuple(l.detach().requires_grad_(True) for l in logits)
    params = {n: p.detach() for n, p in params.items()}
    args, kwargs = config.sample_to_model_inputs(batch)
    frozen = _bn.frozen_batch_norm(apply.search_space) if frozen_bn else contextlib.nullcontext()
    installed = estimator.installed(apply, params, buffers if other_buffers is None else other_buffers, leaves, sample)
    with frozen, torch.enable_grad(), installed:
        output, new_buffers = apply(params, buffers, sample.architecture, *args, **kwargs)
        loss = loss_fn(output, batch)
    with torch.enable_grad():
        loss = loss + _latency_terms(leaves, config, loss)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    names = logit_names(len(leaves))
    return {n: g for n, g in zip(names, grads) if g is not None}, new_buffers, loss.detach()


def _latency_terms(leaves: Sequence[torch.Tensor], config: SearchConfig, loss: torch.Tensor) -> torch.Tensor | float:
    """``latency_weight * E[latency] + latency_penalty(...)``, the latency terms of the search loss."""
    table, terms = config.table, 0.0
    if (config.latency_weight or config.latency_loss_weight) and table is None:
        raise ValueError("latency_weight and latency_loss_weight need a latency table")
    if config.latency_weight:
        terms = terms + config.latency_weight * _latency.expected_latency(leaves, table)
    if config.latency_loss_weight:
        if config.max_latency is None:
            raise ValueError("latency_loss_weight needs max_latency")
        penalty = _latency.latency_penalty(leaves, table, config.max_latency, config.latency_loss_weight)
        terms = terms + penalty.to(loss.dtype)
    return terms


def search_step(
    apply: Apply,
    optimizer: Optimizer,
    loss_fn: LossFn,
    params: Mapping[str, torch.Tensor],
    state: SearchState,
    batches: Sequence[Any],
    *,
    bn_tune_data: Sequence[Sequence[Any]] | None = None,
    config: SearchConfig | None = None,
    **options: Any,
) -> tuple[SearchState, dict[str, Any]]:
    """One search update of the architecture logits over a ghost batch.

    For every batch: a new sample (``config.estimator.draw``); with ``bn_tune_data`` the batch-norm
    statistics of both sides of the comparison (path ``a``, and ``b`` or the first-order
    alternatives' path) are tuned from the same buffers on the same ``bn_tune_data[b]``
    (``config.bn_scheme.tune``; only ``a``'s are kept) and the loss runs with batch norm in
    evaluation mode; the gradient estimates of all batches are summed (reduced across ranks with
    ``config.reduce_grads``) and ``optimizer`` updates the logits.  ``params`` are only read; nothing
    given is mutated.

    Args:
        apply: The pure forward, from :func:`make_apply` (may be compiled; the same first argument as
            :func:`pretrain_step`); its search space receives the estimator's hooks while a step runs.
        optimizer: Pure optimizer over the logits (keys :func:`logit_names`).
        loss_fn: ``loss_fn(output, batch) -> scalar``; ``"two_path"`` calls it on :func:`two_path_output`.
        params: Weights ``{name: tensor}``.
        state: The :class:`SearchState`.
        batches: Dataloader items of the ghost batch.
        bn_tune_data: One list of dataloader items per batch for batch-norm tuning, or ``None``.
        config: The :class:`SearchConfig` (:func:`search_config`), fixed for the whole search.
        **options: Instead of ``config``, the keywords of :func:`search_config` (``table``,
            ``max_latency``, ``latency_weight``, ``latency_loss_weight``, ``estimator``,
            ``bn_scheme``, ``bn_tune_batches``, ``sample_to_model_inputs``, ``check_finite``,
            ``reduce_grads``, ``reduce_buffers``), parsed at every call.

    Returns:
        ``(new_state, info)`` with ``info = {"loss": mean loss, "samples": [sample, ...]}`` (each the
        estimator's own sample type).

    Raises:
        FloatingPointError: If ``check_finite`` and a loss is NaN or infinite; nothing is updated.
            With ``reduce_grads`` the check runs after the reduction (on the reduced gradients too),
            so that every rank raises together.
        TypeError: If ``apply`` was not made by :func:`make_apply`, or both ``config`` and options
            are given.
        ValueError: If ``batches`` is empty, ``bn_tune_data`` does not have one entry per batch, an
            option is bad (:func:`search_config`), or ``table`` does not fit the search space.
    """
    config = _config(config, options, "search_step")
    _check_step(apply, config, batches, bn_tune_data)
    key, buffers, logits, cache = state.key, dict(state.buffers), state.logits, state.bn_cache
    total: dict[str, torch.Tensor] = {}
    losses, samples = [], []
    for b, batch in enumerate(batches):
        key, sample = config.estimator.draw(key, logits, config.table, config.max_latency)
        other_buffers = None
        if bn_tune_data is not None:
            buffers, other_buffers, cache = _tune_sides(apply, config, params, buffers, sample, bn_tune_data[b], cache)
        grads, new_buffers, loss = search_gradients(
            apply, params, buffers, logits, sample, loss_fn, batch, frozen_bn=bn_tune_data is not None,
            other_buffers=other_buffers, config=config,
        )
        buffers = new_buffers if bn_tune_data is None else buffers  # frozen batch norm changed nothing
        add_gradients_(total, grads)
        losses.append(loss)
        samples.append(sample)
    total = reduce_and_check(
        total, [s.architecture for s in samples], losses, step=state.step, phase="search", kept="logits",
        check_finite=config.check_finite, reduce_grads=config.reduce_grads,
    )
    names = logit_names(len(logits))
    new_logits, opt_state = optimizer.update(total, state.opt_state, dict(zip(names, logits)))
    new_state = SearchState(buffers, tuple(new_logits[n] for n in names), opt_state, key, state.step + 1, cache)
    return new_state, {"loss": torch.stack(losses).mean(), "samples": samples}


def _check_step(
    apply: Apply, config: SearchConfig, batches: Sequence[Any], bn_tune_data: Sequence[Sequence[Any]] | None
) -> None:
    """The checks of :func:`search_step` that need its arguments together (before anything runs)."""
    if not batches:
        raise ValueError("search_step needs at least one batch")
    if bn_tune_data is not None and len(bn_tune_data) != len(batches):
        raise ValueError(f"bn_tune_data has {len(bn_tune_data)} entries; give one list per batch ({len(batches)})")
    if not isinstance(apply, Apply):
        raise TypeError(f"search_step expects the Apply made by enot.functional.make_apply(search_space), got {apply!r}")
    if config.table is not None:  # the table must fit the space: wrong counts give wrong latencies
        _layout.check_latency_fits(apply.layout, [len(ops) for ops in config.table.operations])


def _tune_sides(
    apply: Apply,
    config: SearchConfig,
    params: Mapping[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    sample: Any,
    items: Sequence[Any],
    cache: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, Any]:
    """Both sides tuned from the same buffers on the same items (``BNScheme.tune``)."""
    estimator = config.estimator
    other = None if estimator.trivial(sample) else estimator.other_architecture(sample)
    return config.bn_scheme.tune(
        apply.search_space, params, buffers, sample.architecture, other, items, cache,
        sample_to_model_inputs=config.sample_to_model_inputs, reduce_buffers=config.reduce_buffers,
    )
