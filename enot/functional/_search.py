"""The pure search step: architecture-logit gradients from a paired-candidate score function.

For every container ``c`` the step samples the path's candidate ``i_c`` and an alternative ``j_c``.
The container's output is replaced by ``o_i + stopgrad(o_j - o_i) * (log q_c(j) - stopgrad(log q_c(j)))``
(:func:`paired_hooks`): its value is ``o_i``, so the loss is exactly the sampled path's, and the
gradient it sends to the logits is ``<dL/do, o_j - o_i> * grad log q_c(j)``: a first-order estimate
of ``L(j) - L(i)`` times the score of ``j``, i.e. REINFORCE for ``j`` with ``L(i)`` as baseline.
``q_c`` is ``softmax(logits[c])``, restricted under a latency bound to the candidates that keep the
path feasible (the conditional of the restricted distribution).  The signal is taken in the
backward pass, so the loss value is never needed.  See ``docs/design.md``, "Search (phase 2)".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from enot.functional import _bn, _latency, _layout, _random, _samplers, _selection
from enot.functional._grads import add_gradients_, reduce_and_check
from enot.functional._optim import Optimizer
from enot.functional._trees import Apply, make_apply
from enot.functional._types import InputsFn, LossFn, ReduceFn, default_sample_to_model_inputs

__all__ = [
    "SearchSample",
    "SearchState",
    "installed_hooks",
    "logit_names",
    "next_search_sample",
    "paired_hooks",
    "search_gradients",
    "search_init",
    "search_step",
]

class SearchState(NamedTuple):
    """Everything a search step reads and writes (the weights are an argument: search never changes them).

    Attributes:
        buffers: Buffers ``{name: tensor}`` (batch-norm statistics of the sampled paths change).
        logits: Architecture logits, one 1-D tensor per container.
        opt_state: State of the pure optimizer over :func:`logit_names`-keyed logits.
        key: Random key the next sample is drawn from.
        step: Number of steps taken (0-d int64 tensor).
    """

    buffers: dict[str, torch.Tensor]
    logits: tuple[torch.Tensor, ...]
    opt_state: Any
    key: torch.Tensor
    step: torch.Tensor


class SearchSample(NamedTuple):
    """What one gradient computation of the search samples.

    Attributes:
        architecture: The path the loss is computed on.
        alternatives: One alternative candidate per container, drawn from ``q_c`` restricted to the
            candidates other than the path's (the path's own candidate when there is none).
        importance_weights: ``1 - q_c(i_c)`` per container: the probability that a draw from ``q_c`` differs
            from the path's candidate, which makes the paired estimate unbiased for draws from ``q_c``.
        masks: Per container, the candidates that keep the path within the latency bound (all
            ``True`` without a bound); ``log q_c`` is the log-softmax over them.
    """

    architecture: list[int]
    alternatives: list[int]
    importance_weights: list[float]
    masks: list[torch.Tensor]


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
) -> tuple[torch.Tensor, SearchSample]:
    """Splits ``key`` and samples the path and the alternatives of one gradient computation.

    The path is drawn from ``softmax(logits)`` (restricted exactly to ``latency <= max_latency`` when
    a bound is given).  Container ``c``'s comparison distribution ``q_c`` is its softmax restricted
    to the candidates that keep the path feasible; the alternative ``j_c`` is drawn from ``q_c``
    conditioned on ``j_c != i_c`` and weighted by ``1 - q_c(i_c)``, which has the expectation of a
    plain draw from ``q_c`` (a draw equal to ``i_c`` contributes nothing) and never wastes the
    alternative forward on the path's own candidate.

    Returns:
        ``(new_key, sample)``.
    """
    logits = tuple(l.detach() for l in logits)
    new_key, path_key, alt_key = _random.split(key, 3)
    if max_latency is None:
        architecture = _samplers.sample_architectures(path_key, "categorical", _samplers.SamplingInputs((), logits))[0]
        masks = [torch.ones(l.numel(), dtype=torch.bool) for l in logits]
    else:
        if table is None:
            raise ValueError("a latency bound needs a latency table")
        inputs = _samplers.SamplingInputs((), logits, table, max_latency)
        architecture = _samplers.sample_architectures(path_key, "feasible", inputs)[0]
        masks = _selection.feasible_alternatives(architecture, table, max_latency)
    g = _random.generator(alt_key)
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
    return new_key, SearchSample(architecture, alternatives, weights, masks)


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
    frozen_bn: bool = False,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    apply: Apply | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Gradient estimate of the loss with respect to the logits, on one batch and one sample.

    The loss is ``loss_fn(output, batch)`` (plus ``latency_weight * expected_latency(logits, table)``),
    computed on ``sample.architecture`` with the paired hooks installed; weights get no gradient.

    Returns:
        ``(grads, new_buffers, loss)``: gradients keyed by :func:`logit_names`, only for the logits
        the loss depends on (as ``.grad`` stays ``None`` in PyTorch for the others: a container the
        path does not reach, or whose alternative is the path's own candidate), the buffers after
        the forward, the loss (detached).
    """
    apply = apply or make_apply(search_space)
    leaves = tuple(l.detach().requires_grad_(True) for l in logits)
    hooks = paired_hooks(leaves, sample)
    args, kwargs = sample_to_model_inputs(batch)
    frozen = _bn.frozen_batch_norm(search_space) if frozen_bn else contextlib.nullcontext()
    with torch.enable_grad(), installed_hooks(search_space, hooks), frozen:
        output, new_buffers = apply(dict(params), buffers, sample.architecture, *args, **kwargs)
        loss = loss_fn(output, batch)
        if latency_weight:
            if table is None:
                raise ValueError("latency_weight needs a latency table")
            loss = loss + latency_weight * _latency.expected_latency(leaves, table)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    names = logit_names(len(leaves))
    return {n: g for n, g in zip(names, grads) if g is not None}, new_buffers, loss.detach()


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
    bn_tune_data: Sequence[Sequence[Any]] | None = None,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    check_finite: bool = True,
    reduce_grads: ReduceFn | None = None,
    reduce_buffers: ReduceFn | None = None,
) -> tuple[SearchState, dict[str, Any]]:
    """One search update of the architecture logits over a ghost batch.

    For every batch: a new :func:`next_search_sample`; with ``bn_tune_data`` the path's batch-norm
    statistics are recomputed from ``bn_tune_data[b]`` (:func:`bn_tune`) and the loss runs with batch
    norm in evaluation mode; the gradient estimates of all batches are summed and ``optimizer``
    updates the logits.  ``params`` are only read; nothing given is mutated.

    Args:
        apply: The pure forward, from :func:`make_apply` (may be compiled; the same first argument as
            :func:`pretrain_step`); its search space's containers receive the hooks while the step runs.
        optimizer: Pure optimizer over the logits (keys :func:`logit_names`).
        loss_fn: ``loss_fn(output, batch) -> scalar``.
        params: Weights ``{name: tensor}``.
        state: The :class:`SearchState`.
        batches: Dataloader items of the ghost batch.
        table: Latency table (needed with ``max_latency`` or ``latency_weight``).
        max_latency: Sample only architectures within this latency.
        latency_weight: Weight of ``expected_latency(logits, table)`` added to the loss.
        bn_tune_data: One list of dataloader items per batch for batch-norm tuning, or ``None``.
        sample_to_model_inputs: Maps one item to ``(args, kwargs)``.
        check_finite: Raise on a non-finite loss.
        reduce_grads: Across processes, applied to the summed logit gradients before the update
            (``enot.distributed.GradientReducer()``: the mean over ranks); ``None``: identity.
        reduce_buffers: Across processes, applied to the path's freshly tuned batch-norm buffers
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
            ``table`` does not fit the search space (counts, nested containers).
    """
    if not batches:
        raise ValueError("search_step needs at least one batch")
    if bn_tune_data is not None and len(bn_tune_data) != len(batches):
        raise ValueError(f"bn_tune_data has {len(bn_tune_data)} entries; give one list per batch ({len(batches)})")
    if not isinstance(apply, Apply):
        raise TypeError(f"search_step expects the Apply made by enot.functional.make_apply(search_space), got {apply!r}")
    if table is not None:  # the table must fit the space (issue 12): wrong counts give wrong latencies
        _layout.check_latency_fits(apply.layout, [len(ops) for ops in table.operations])
    search_space = apply.search_space
    key, buffers, logits = state.key, dict(state.buffers), state.logits
    total: dict[str, torch.Tensor] = {}
    losses, samples = [], []
    for b, batch in enumerate(batches):
        key, sample = next_search_sample(key, logits, table, max_latency)
        if bn_tune_data is not None:
            buffers = _bn.bn_tune(
                search_space, params, buffers, bn_tune_data[b], architecture=sample.architecture,
                sample_to_model_inputs=sample_to_model_inputs,
            )
            if reduce_buffers is not None:
                tuned = [n for n in _bn.batch_norm_buffer_names(search_space, sample.architecture) if n in buffers]
                buffers.update(reduce_buffers({n: buffers[n] for n in tuned}))
        grads, buffers, loss = search_gradients(
            search_space, params, buffers, logits, sample, loss_fn, batch, table=table,
            latency_weight=latency_weight, frozen_bn=bn_tune_data is not None,
            sample_to_model_inputs=sample_to_model_inputs, apply=apply,
        )
        add_gradients_(total, grads)
        losses.append(loss)
        samples.append(sample)
    total = reduce_and_check(
        total, [s.architecture for s in samples], losses, step=state.step, phase="search", kept="logits",
        check_finite=check_finite, reduce_grads=reduce_grads,
    )
    names = logit_names(len(logits))
    new_logits, opt_state = optimizer.update(total, state.opt_state, dict(zip(names, logits)))
    new_state = SearchState(buffers, tuple(new_logits[n] for n in names), opt_state, key, state.step + 1)
    return new_state, {"loss": torch.stack(losses).mean(), "samples": samples}
