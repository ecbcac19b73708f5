"""The pure search step: unbiased gradients of the expected loss with respect to the architecture logits.

Two estimators (``docs/design.md``, "Search (phase 2)"):

* ``"two_path"`` (default): two architectures ``a, b`` drawn independently from the search
  distribution ``pi`` (``softmax(logits)``, restricted exactly to the latency bound when one is
  given) and a point ``s ~ U(0, 1)``.  The model's output is ``y_s = y_a + s (y_b - y_a)`` with
  the term ``stopgrad(y_b - y_a) * (g - stopgrad(g))``, ``g = (log p(b) - log p(a)) / 2``
  (:func:`two_path_output`).  The backward pass gives ``<dl/dy(y_s), y_b - y_a> grad g``, and
  ``E_s <dl/dy(y_s), y_b - y_a> = l(y_b) - l(y_a)`` (the fundamental theorem of calculus on the
  segment), so the estimate's expectation is ``E_{a,b}[(L(b) - L(a)) (grad log p(b) - grad log p(a))] / 2``
  ``= Cov_pi(L, grad log p) = grad E_pi[L]`` exactly, with or without a bound (the bound's
  normaliser cancels in the difference).  No loss value is needed; two forwards, no backward
  through the network.
* ``"first_order"``: the paired-candidate estimator of earlier versions (:func:`paired_hooks`):
  its expectation is the gradient of the first-order approximation of ``E_p[L]``, biased for
  nonlinear losses and under a bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import optree
import torch
from torch import nn

from enot.functional import _bn, _latency, _layout, _random, _selection
from enot.functional._grads import add_gradients_, reduce_and_check
from enot.functional._optim import Optimizer
from enot.functional._trees import Apply, make_apply
from enot.functional._types import InputsFn, LossFn, ReduceFn, default_sample_to_model_inputs

__all__ = [
    "BNCacheEntry",
    "BN_SCHEMES",
    "ESTIMATORS",
    "SearchSample",
    "SearchState",
    "cached_tuned_buffers",
    "installed_hooks",
    "logit_names",
    "next_search_sample",
    "paired_hooks",
    "search_gradients",
    "search_init",
    "search_step",
    "two_path_output",
]

ESTIMATORS = ("two_path", "first_order")
BN_SCHEMES = ("fresh", "cached")
BN_CACHE_SIZE = 1024  # architectures whose tuned statistics a "cached" search keeps (least recently used dropped)


class BNCacheEntry(NamedTuple):
    """Batch-norm statistics of one architecture's path, tuned over ``batches`` batches so far."""

    batches: int
    stats: dict[str, torch.Tensor]

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
    """What one gradient computation of the search samples.

    Attributes:
        architecture: The path ``a`` the step runs first; its batch-norm statistics are kept.
        alternatives: What each container's candidate is compared with.  ``"two_path"``: the second
            architecture ``b``, drawn independently from the same distribution as ``a``.
            ``"first_order"``: one alternative candidate per container, drawn from ``q_c``
            restricted to the candidates other than the path's (the path's own when there is none).
        importance_weights: ``"two_path"``: ``0.5`` per container.  ``"first_order"``: ``1 - q_c(i_c)``, the
            probability that a draw from ``q_c`` differs from the path's candidate.
        masks: ``"first_order"``: per container, the candidates that keep the path within the
            latency bound (``log q_c`` is the log-softmax over them); ``"two_path"``: all ``True``.
        estimator: ``"two_path"`` or ``"first_order"``.
        position: ``"two_path"``: the point ``s ~ U(0, 1)`` of the segment from ``y_a`` to ``y_b``
            at which the loss is evaluated; ``0.0`` for ``"first_order"``.
    """

    architecture: list[int]
    alternatives: list[int]
    importance_weights: list[float]
    masks: list[torch.Tensor]
    estimator: str = "two_path"
    position: float = 0.0


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


def _check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown search estimator {estimator!r}; use one of {list(ESTIMATORS)}")
    return estimator


def _draw_path(
    key: torch.Tensor, logits: Sequence[torch.Tensor], table: _latency.LatencyTable | None, max_latency: float | None
) -> list[int]:
    """One architecture from ``softmax(logits)``, restricted exactly to ``latency <= max_latency``."""
    return _selection.sample_feasible_architecture(key, logits, table, max_latency)


def _first_order_alternatives(
    key: torch.Tensor, logits: Sequence[torch.Tensor], architecture: list[int], masks: list[torch.Tensor]
) -> tuple[list[int], list[float]]:
    """Per container, ``j_c ~ q_c`` conditioned on ``j_c != i_c``, and its weight ``1 - q_c(i_c)``."""
    g = _random.generator(key)
    alternatives, weights = [], []
    for l, mask, i in zip(logits, masks, architecture):
        probs = torch.softmax(l.double().cpu().masked_fill(~mask, float("-inf")), 0)
        others = probs.clone()
        others[i] = 0.0
        if float(others.sum()) > 0:
            alternatives.append(int(torch.multinomial(others, 1, generator=g)))
            weights.append(float(1.0 - probs[i]))
        else:  # no other candidate keeps the path feasible (or has probability): no comparison
            alternatives.append(i)
            weights.append(0.0)
    return alternatives, weights


def next_search_sample(
    key: torch.Tensor,
    logits: Sequence[torch.Tensor],
    table: _latency.LatencyTable | None = None,
    max_latency: float | None = None,
    *,
    estimator: str = "two_path",
) -> tuple[torch.Tensor, SearchSample]:
    """Splits ``key`` and samples what one gradient computation needs.

    The path ``a`` is drawn from ``softmax(logits)`` (restricted exactly to ``latency <= max_latency``
    when a bound is given).  ``"two_path"``: a second architecture ``b`` from the same distribution,
    independently, and the point ``s ~ U(0, 1)``.  ``"first_order"``: container ``c``'s comparison
    distribution ``q_c`` is its softmax restricted to the candidates that keep ``a`` feasible; the
    alternative ``j_c`` is drawn from ``q_c`` conditioned on ``j_c != a_c`` and weighted by
    ``1 - q_c(a_c)``.

    Returns:
        ``(new_key, sample)``.

    Raises:
        ValueError: On an unknown ``estimator``, a bound without a table, or a bound no architecture
            of positive probability meets.
    """
    _check_estimator(estimator)
    logits = tuple(l.detach() for l in logits)
    new_key, path_key, alt_key = _random.split(key, 3)
    architecture = _draw_path(path_key, logits, table, max_latency)
    if estimator == "two_path":
        other_key, position_key = _random.split(alt_key, 2)
        other = _draw_path(other_key, logits, table, max_latency)
        position = float(torch.rand((), generator=_random.generator(position_key), dtype=torch.float64))
        masks = [torch.ones(l.numel(), dtype=torch.bool) for l in logits]
        return new_key, SearchSample(architecture, other, [0.5] * len(logits), masks, "two_path", position)
    if max_latency is None:
        masks = [torch.ones(l.numel(), dtype=torch.bool) for l in logits]
    else:
        masks = _selection.feasible_alternatives(architecture, table, max_latency)
    alternatives, weights = _first_order_alternatives(alt_key, logits, architecture, masks)
    return new_key, SearchSample(architecture, alternatives, weights, masks, "first_order", 0.0)


def two_path_output(
    output: Any, other_output: Any, logits: Sequence[torch.Tensor], sample: SearchSample
) -> Any:
    """The model output the loss sees under the ``"two_path"`` estimator.

    Every floating tensor leaf becomes ``y_a + s (y_b - y_a) + stopgrad(y_b - y_a) * (g - stopgrad(g))``
    with ``y_a`` from ``output`` (path ``sample.architecture``), ``y_b`` from ``other_output`` (path
    ``sample.alternatives``), ``s = sample.position`` and ``g = (log p(b) - log p(a)) / 2`` summed over
    containers (unnormalised ``log_softmax``: under a bound the normaliser cancels).  Other leaves
    are ``output``'s.  Its value is ``y_s``; the gradient it sends to ``logits`` is
    ``<dl/dy(y_s), y_b - y_a> grad g``, whose expectation over ``s, a, b`` is ``grad E[L]``.

    Raises:
        ValueError: If the two outputs differ in structure or in a non-floating leaf's shape.
    """
    g = sum(
        0.5 * (torch.log_softmax(l, 0)[j] - torch.log_softmax(l, 0)[i])
        for l, i, j in zip(logits, sample.architecture, sample.alternatives)
    )
    leaves_a, spec = optree.tree_flatten(output, none_is_leaf=True)
    leaves_b, spec_b = optree.tree_flatten(other_output, none_is_leaf=True)
    if spec != spec_b:
        raise ValueError(f"the two paths returned outputs of different structure: {spec} and {spec_b}")
    s = sample.position
    combined = []
    for y_a, y_b in zip(leaves_a, leaves_b):
        if isinstance(y_a, torch.Tensor) and y_a.is_floating_point():
            if not isinstance(y_b, torch.Tensor) or y_b.shape != y_a.shape:
                raise ValueError(f"the two paths returned outputs of different shapes: {tuple(y_a.shape)} and "
                                 f"{getattr(y_b, 'shape', type(y_b).__name__)}")
            delta = (y_b - y_a).detach()
            score = (g - g.detach()).to(y_a.dtype) if isinstance(g, torch.Tensor) else 0.0
            combined.append(y_a.detach() + s * delta + delta * score)
        else:
            combined.append(y_a)
    return optree.tree_unflatten(spec, combined)


class _Flag:
    running_alternative = False


def paired_hooks(
    logits: Sequence[torch.Tensor], sample: SearchSample
) -> list[Callable[..., torch.Tensor]]:
    """One container hook per container for the paired-candidate estimator.

    Hook ``c`` runs candidate ``alternatives[c]`` on the container's inputs without gradients (its
    batch-norm buffers cloned, so nothing it computes is kept) and returns
    ``o_i + w * (o_j - o_i).detach() * (log q - log q.detach())`` with ``log q = log_softmax`` of
    ``logits[c]`` over ``masks[c]`` evaluated at ``j`` and ``w = sample.importance_weights[c]``.  When ``j`` is
    the path's own candidate, a zero term still ties the output to the logits (so ``loss.backward()``
    always has a graph).  Hooks are inert while an alternative runs (nested containers).
    """
    flag = _Flag()

    def make(logit: torch.Tensor, j: int, weight: float, mask: torch.Tensor) -> Callable[..., torch.Tensor]:
        def hook(container: nn.Module, output: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
            if flag.running_alternative:
                return output
            if j == container.active_index:
                return output + 0.0 * logit.sum().to(output.dtype)
            candidate = container.search_variants[j]
            flag.running_alternative = True
            try:
                with torch.no_grad():
                    own = {n: b.clone() for n, b in candidate.named_buffers()}
                    alternative = torch.func.functional_call(candidate, own, args, kwargs, strict=False)
            finally:
                flag.running_alternative = False
            masked = torch.where(mask.to(logit.device), logit, torch.full_like(logit, float("-inf")))
            log_q = torch.log_softmax(masked, 0)[j]
            score = (weight * (log_q - log_q.detach())).to(output.dtype)
            return output + (alternative - output.detach()) * score

        return hook

    return [make(l, j, w, m) for l, j, w, m in zip(logits, sample.alternatives, sample.importance_weights, sample.masks)]


@contextlib.contextmanager
def installed_hooks(search_space: nn.Module, hooks: Sequence[Callable[..., torch.Tensor]]) -> Iterator[None]:
    """Context manager: install ``hooks`` on the search space's containers, remove them after."""
    containers = search_space.search_variants_containers
    if len(containers) != len(hooks):
        raise ValueError(f"got {len(hooks)} hooks for {len(containers)} containers")
    with contextlib.ExitStack() as stack:
        for container, hook in zip(containers, hooks):
            stack.enter_context(container.output_hook(hook))
        yield


def search_gradients(
    search_space: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    logits: Sequence[torch.Tensor],
    sample: SearchSample,
    loss_fn: LossFn,
    batch: Any,
    *,
    table: _latency.LatencyTable | None = None,
    latency_weight: float = 0.0,
    max_latency: float | None = None,
    latency_loss_weight: float = 0.0,
    frozen_bn: bool = False,
    other_buffers: Mapping[str, torch.Tensor] | None = None,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    apply: Apply | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Gradient estimate of the loss with respect to the logits, on one batch and one sample.

    The loss is ``loss_fn(output, batch)`` plus ``latency_weight * expected_latency(logits, table)``
    plus ``latency_penalty(logits, table, max_latency, latency_loss_weight)`` (when the weights are
    non-zero).  ``"two_path"``: both paths run without gradients (``sample.alternatives`` on
    ``other_buffers``, default ``buffers``, whose changes are dropped) and the loss sees
    :func:`two_path_output`; ``"first_order"``: ``sample.architecture`` runs with the paired hooks.
    Weights get no gradient.

    Returns:
        ``(grads, new_buffers, loss)``: gradients keyed by :func:`logit_names` (``"two_path"``: every
        container's, exactly zero where ``a`` and ``b`` agree; ``"first_order"``: only for the logits
        the loss depends on, as ``.grad`` stays ``None`` in PyTorch for the others), the buffers after
        path ``a``'s forward, the loss (detached).
    """
    apply = apply or make_apply(search_space)
    leaves = tuple(l.detach().requires_grad_(True) for l in logits)
    args, kwargs = sample_to_model_inputs(batch)
    frozen = _bn.frozen_batch_norm(search_space) if frozen_bn else contextlib.nullcontext()
    with frozen:
        if _check_estimator(sample.estimator) == "two_path":
            output, new_buffers = _two_path_forward(apply, params, buffers, other_buffers, leaves, sample, args, kwargs)
            with torch.enable_grad():
                loss = loss_fn(output, batch)
        else:
            with torch.enable_grad(), installed_hooks(search_space, paired_hooks(leaves, sample)):
                output, new_buffers = apply(dict(params), buffers, sample.architecture, *args, **kwargs)
                loss = loss_fn(output, batch)
    with torch.enable_grad():
        loss = loss + _latency_terms(leaves, table, latency_weight, max_latency, latency_loss_weight, loss)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    names = logit_names(len(leaves))
    return {n: g for n, g in zip(names, grads) if g is not None}, new_buffers, loss.detach()


def _two_path_forward(
    apply: Callable[..., Any],
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    other_buffers: Mapping[str, torch.Tensor] | None,
    leaves: Sequence[torch.Tensor],
    sample: SearchSample,
    args: tuple,
    kwargs: dict,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Runs paths ``a`` and ``b`` without gradients and returns :func:`two_path_output` and ``a``'s buffers."""
    with torch.no_grad():
        output, new_buffers = apply(dict(params), buffers, sample.architecture, *args, **kwargs)
        if list(sample.alternatives) == list(sample.architecture):
            other = output  # nothing to compare: a zero estimate, no second forward
        else:
            other, _ = apply(dict(params), other_buffers if other_buffers is not None else buffers,
                             sample.alternatives, *args, **kwargs)
    with torch.enable_grad():
        return two_path_output(output, other, leaves, sample), new_buffers


def _latency_terms(
    leaves: Sequence[torch.Tensor],
    table: _latency.LatencyTable | None,
    latency_weight: float,
    max_latency: float | None,
    latency_loss_weight: float,
    loss: torch.Tensor,
) -> torch.Tensor | float:
    """``latency_weight * E[latency] + latency_penalty(...)``, the latency terms of the search loss."""
    terms: torch.Tensor | float = 0.0
    if latency_weight or latency_loss_weight:
        if table is None:
            raise ValueError("latency_weight and latency_loss_weight need a latency table")
    if latency_weight:
        terms = terms + latency_weight * _latency.expected_latency(leaves, table)
    if latency_loss_weight:
        if max_latency is None:
            raise ValueError("latency_loss_weight needs max_latency")
        terms = terms + _latency.latency_penalty(leaves, table, max_latency, latency_loss_weight).to(loss.dtype)
    return terms


def _tuned_buffers(
    search_space: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architecture: list[int],
    bn_batches: Sequence[Any],
    sample_to_model_inputs: InputsFn,
    reduce_buffers: ReduceFn | None,
) -> dict[str, torch.Tensor]:
    """``buffers`` with ``architecture``'s batch-norm statistics recomputed on ``bn_batches`` (reduced across ranks)."""
    tuned = _bn.bn_tune(
        search_space, params, buffers, bn_batches, architecture=architecture, sample_to_model_inputs=sample_to_model_inputs
    )
    if reduce_buffers is not None:
        names = [n for n in _bn.batch_norm_buffer_names(search_space, architecture) if n in tuned]
        tuned.update(reduce_buffers({n: tuned[n] for n in names}))
    return tuned


def cached_tuned_buffers(
    search_space: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architecture: Sequence[int],
    bn_batches: Sequence[Any],
    cache: Mapping[tuple[int, ...], BNCacheEntry] | None,
    target: int,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    cache_size: int = BN_CACHE_SIZE,
) -> tuple[dict[str, torch.Tensor], dict[tuple[int, ...], BNCacheEntry]]:
    """``buffers`` with ``architecture``'s batch-norm statistics from the cache, refined on ``bn_batches``.

    The statistics of an architecture are the cumulative average (``momentum=None``) over every batch
    it was tuned on so far: a first visit tunes from reset statistics on ``bn_batches``; a later visit
    continues the same average with ``bn_batches`` (``bn_tune(reset=False)``: the batch counters make
    it exactly the average over all those batches) while it holds fewer than ``target`` batches, and
    reuses it unchanged after.  Returns the buffers (inputs never mutated) and the new cache (a new
    dict, this architecture most recent; the least recently used beyond ``cache_size`` dropped).
    """
    key = tuple(int(k) for k in architecture)
    cache = dict(cache or {})
    entry = cache.pop(key, None)
    if entry is None:
        tuned = _bn.bn_tune(search_space, params, buffers, bn_batches, architecture=list(key),
                            sample_to_model_inputs=sample_to_model_inputs)
        entry = BNCacheEntry(len(bn_batches), {n: tuned[n] for n in _bn.batch_norm_buffer_names(search_space, key)
                                               if n in tuned})
    elif entry.batches < target and bn_batches:
        tuned = _bn.bn_tune(search_space, params, {**buffers, **entry.stats}, bn_batches, architecture=list(key),
                            sample_to_model_inputs=sample_to_model_inputs, reset=False)
        entry = BNCacheEntry(entry.batches + len(bn_batches), {n: tuned[n] for n in entry.stats})
    cache[key] = entry
    while len(cache) > cache_size:
        del cache[next(iter(cache))]
    return {**buffers, **entry.stats}, cache


def search_step(
    apply: Apply,
    optimizer: Optimizer,
    loss_fn: LossFn,
    params: Mapping[str, torch.Tensor],
    state: SearchState,
    batches: Sequence[Any],
    *,
    table: _latency.LatencyTable | None = None,
    max_latency: float | None = None,
    latency_weight: float = 0.0,
    latency_loss_weight: float = 0.0,
    estimator: str = "two_path",
    bn_tune_data: Sequence[Sequence[Any]] | None = None,
    bn_scheme: str = "fresh",
    bn_tune_batches: int = 10,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    check_finite: bool = True,
    reduce_grads: ReduceFn | None = None,
    reduce_buffers: ReduceFn | None = None,
) -> tuple[SearchState, dict[str, Any]]:
    """One search update of the architecture logits over a ghost batch.

    For every batch: a new :func:`next_search_sample`; with ``bn_tune_data`` the batch-norm
    statistics of both sides of the comparison (path ``a``, and ``b`` or the first-order
    alternatives' path) are recomputed from the same ``bn_tune_data[b]`` (:func:`bn_tune`; only
    ``a``'s are kept) and the loss runs with batch norm in evaluation mode; the gradient estimates of
    all batches are summed and ``optimizer`` updates the logits.  ``params`` are only read; nothing
    given is mutated.

    Args:
        apply: The pure forward, from :func:`make_apply` (may be compiled; the same first argument as
            :func:`pretrain_step`); its search space's containers receive hooks while a first-order
            step runs.
        optimizer: Pure optimizer over the logits (keys :func:`logit_names`).
        loss_fn: ``loss_fn(output, batch) -> scalar``; ``"two_path"`` calls it on :func:`two_path_output`.
        params: Weights ``{name: tensor}``.
        state: The :class:`SearchState`.
        batches: Dataloader items of the ghost batch.
        table: Latency table (needed with ``max_latency``, ``latency_weight`` or ``latency_loss_weight``).
        max_latency: Sample only architectures within this latency.
        latency_weight: Weight of ``expected_latency(logits, table)`` added to the loss.
        latency_loss_weight: Weight of :func:`latency_penalty` added to the loss (needs ``max_latency``;
            what ``EnotFixedLatencySearchOptimizer.modify_loss`` adds).
        estimator: ``"two_path"`` (default, unbiased) or ``"first_order"`` (see the module docstring).
        bn_tune_data: One list of dataloader items per batch for batch-norm tuning, or ``None``.
        bn_scheme: ``"fresh"`` (default): each side's statistics recomputed from reset on
            ``bn_tune_data[b]`` at every step.  ``"cached"``: each side's statistics kept per
            architecture in ``state.bn_cache`` and refined with ``bn_tune_data[b]`` (give one item per
            batch) while they average fewer than ``bn_tune_batches`` batches, reused after
            (:func:`cached_tuned_buffers`).  Not with ``reduce_buffers``.
        bn_tune_batches: ``"cached"``: batches an architecture's statistics average before they are
            reused without tuning.
        sample_to_model_inputs: Maps one item to ``(args, kwargs)``.
        check_finite: Raise on a non-finite loss.
        reduce_grads: Across processes, applied to the summed logit gradients before the update
            (``enot.distributed.GradientReducer()``: the mean over ranks); ``None``: identity.
        reduce_buffers: Across processes, applied to each side's freshly tuned batch-norm buffers
            before the loss (``functools.partial(reducer.reduce_buffers, sum_counters=True)``);
            ``None``: identity.  Every rank must hold the same ``state.key``.

    Returns:
        ``(new_state, info)`` with ``info = {"loss": mean loss, "samples": [SearchSample, ...]}``.

    Raises:
        FloatingPointError: If ``check_finite`` and a loss is NaN or infinite; nothing is updated.
            With ``reduce_grads`` the check runs after the reduction (on the reduced gradients too),
            so that every rank raises together.
        TypeError: If ``apply`` was not made by :func:`make_apply`.
        ValueError: If ``batches`` is empty, ``bn_tune_data`` does not have one entry per batch, or
            ``estimator`` is unknown, or
            ``table`` does not fit the search space (counts, nested containers).
    """
    if not batches:
        raise ValueError("search_step needs at least one batch")
    if bn_tune_data is not None and len(bn_tune_data) != len(batches):
        raise ValueError(f"bn_tune_data has {len(bn_tune_data)} entries; give one list per batch ({len(batches)})")
    if not isinstance(apply, Apply):
        raise TypeError(f"search_step expects the Apply made by enot.functional.make_apply(search_space), got {apply!r}")
    _check_estimator(estimator)
    if bn_scheme not in BN_SCHEMES:
        raise ValueError(f"unknown bn_scheme {bn_scheme!r}; use one of {list(BN_SCHEMES)}")
    if bn_scheme == "cached" and reduce_buffers is not None:
        raise ValueError("bn_scheme='cached' does not support reduce_buffers (several processes); use 'fresh'")
    if table is not None:  # the table must fit the space (issue 12): wrong counts give wrong latencies
        _layout.check_latency_fits(apply.layout, [len(ops) for ops in table.operations])
    search_space = apply.search_space
    key, buffers, logits, cache = state.key, dict(state.buffers), state.logits, state.bn_cache
    total: dict[str, torch.Tensor] = {}
    losses, samples = [], []
    for b, batch in enumerate(batches):
        key, sample = next_search_sample(key, logits, table, max_latency, estimator=estimator)
        other_buffers = None
        if bn_tune_data is not None and bn_scheme == "cached":
            untuned = buffers
            buffers, cache = cached_tuned_buffers(search_space, params, untuned, sample.architecture, bn_tune_data[b],
                                                  cache, bn_tune_batches, sample_to_model_inputs)
            if list(sample.alternatives) != list(sample.architecture):
                other_buffers, cache = cached_tuned_buffers(search_space, params, untuned, _other_side(sample),
                                                            bn_tune_data[b], cache, bn_tune_batches,
                                                            sample_to_model_inputs)
        elif bn_tune_data is not None:
            untuned = buffers
            buffers = _tuned_buffers(search_space, params, untuned, sample.architecture, bn_tune_data[b],
                                     sample_to_model_inputs, reduce_buffers)
            if list(sample.alternatives) != list(sample.architecture):  # else no other side runs
                other_buffers = _tuned_buffers(search_space, params, untuned, _other_side(sample), bn_tune_data[b],
                                               sample_to_model_inputs, reduce_buffers)
        run_buffers = buffers
        if other_buffers is not None and estimator == "first_order":
            # The alternatives run on the containers' inputs with the trees' buffers: give their
            # candidates the statistics tuned on the same batches, path a's its own.
            run_buffers = {**other_buffers, **{n: buffers[n] for n in _bn.batch_norm_buffer_names(
                search_space, sample.architecture) if n in buffers}}
        grads, new_buffers, loss = search_gradients(
            search_space, params, run_buffers, logits, sample, loss_fn, batch, table=table,
            latency_weight=latency_weight, max_latency=max_latency, latency_loss_weight=latency_loss_weight,
            frozen_bn=bn_tune_data is not None, other_buffers=other_buffers,
            sample_to_model_inputs=sample_to_model_inputs, apply=apply,
        )
        buffers = new_buffers if bn_tune_data is None else buffers  # frozen batch norm changed nothing
        add_gradients_(total, grads)
        losses.append(loss)
        samples.append(sample)
    total = reduce_and_check(
        total, [s.architecture for s in samples], losses, step=state.step, phase="search", kept="logits",
        check_finite=check_finite, reduce_grads=reduce_grads,
    )
    names = logit_names(len(logits))
    new_logits, opt_state = optimizer.update(total, state.opt_state, dict(zip(names, logits)))
    new_state = SearchState(buffers, tuple(new_logits[n] for n in names), opt_state, key, state.step + 1, cache)
    return new_state, {"loss": torch.stack(losses).mean(), "samples": samples}


def _other_side(sample: SearchSample) -> list[int]:
    """The architecture the comparison runs besides ``sample.architecture``: ``b`` for ``"two_path"``;
    for ``"first_order"`` the alternatives (each container's alternative runs on that container's
    inputs, so its batch norms are those of the alternatives' path)."""
    return list(sample.alternatives)
