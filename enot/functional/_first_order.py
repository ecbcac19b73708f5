"""The ``"first_order"`` search estimator: the paired-candidate estimator of earlier versions.

Per container ``c`` the path's candidate ``i_c`` is compared with one alternative ``j_c`` drawn from
``q_c`` (the container's softmax restricted to the candidates that keep the path within the bound)
conditioned on ``j_c != i_c``, weighted by ``1 - q_c(i_c)`` (:func:`paired_hooks`).  Its expectation
is the gradient of the first-order approximation of ``E_p[L]``: biased for nonlinear losses and
under a bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from enot.functional import _latency, _random, _selection
from enot.functional._estimator import draw_path

__all__ = ["FirstOrder", "FirstOrderSample", "installed_hooks", "paired_hooks"]


class FirstOrderSample(NamedTuple):
    """What one ``"first_order"`` gradient computation samples.

    Attributes:
        architecture: The path ``a`` the step runs; its batch-norm statistics are kept.
        alternatives: One alternative candidate per container, drawn from ``q_c`` restricted to the
            candidates other than the path's (the path's own when there is none).
        importance_weights: ``1 - q_c(i_c)``, the probability that a draw from ``q_c`` differs from
            the path's candidate (``0.0`` where there is no alternative).
        masks: Per container, the candidates that keep the path within the latency bound (``log q_c``
            is the log-softmax over them); all ``True`` without a bound.
    """

    architecture: list[int]
    alternatives: list[int]
    importance_weights: list[float]
    masks: list[torch.Tensor]


def _alternatives(
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


class _Flag:
    running_alternative = False


def paired_hooks(
    logits: Sequence[torch.Tensor],
    sample: Any,
    candidate_buffers: Sequence[Mapping[str, torch.Tensor] | None] | None = None,
) -> list[Callable[..., torch.Tensor]]:
    """One container hook per container for the paired-candidate estimator.

    Hook ``c`` runs candidate ``alternatives[c]`` on the container's inputs without gradients (on
    clones of its batch-norm buffers, so nothing it computes is kept) and returns
    ``o_i + w * (o_j - o_i).detach() * (log q - log q.detach())`` with ``log q = log_softmax`` of
    ``logits[c]`` over ``masks[c]`` evaluated at ``j`` and ``w = sample.importance_weights[c]``.  When ``j`` is
    the path's own candidate, a zero term still ties the output to the logits (so ``loss.backward()``
    always has a graph).  Hooks are inert while an alternative runs (nested containers).

    Args:
        logits: One leaf per container.
        sample: A :class:`FirstOrderSample`.
        candidate_buffers: Per container, the buffers the alternative candidate runs with, keyed by
            the candidate's own names (``None``: the candidate's current buffers).
    """
    flag = _Flag()
    if candidate_buffers is None:
        candidate_buffers = [None] * len(logits)

    def make(
        logit: torch.Tensor, j: int, weight: float, mask: torch.Tensor, buffers: Mapping[str, torch.Tensor] | None
    ) -> Callable[..., torch.Tensor]:
        def hook(container: nn.Module, output: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
            if flag.running_alternative:
                return output
            if j == container.active_index:
                return output + 0.0 * logit.sum().to(output.dtype)
            candidate = container.search_variants[j]
            flag.running_alternative = True
            try:
                with torch.no_grad():
                    own = {n: (b if buffers is None else buffers.get(n, b)).clone() for n, b in candidate.named_buffers()}
                    alternative = torch.func.functional_call(candidate, own, args, kwargs, strict=False)
            finally:
                flag.running_alternative = False
            masked = torch.where(mask.to(logit.device), logit, torch.full_like(logit, float("-inf")))
            log_q = torch.log_softmax(masked, 0)[j]
            score = (weight * (log_q - log_q.detach())).to(output.dtype)
            return output + (alternative - output.detach()) * score

        return hook

    return [
        make(l, j, w, m, b)
        for l, j, w, m, b in zip(logits, sample.alternatives, sample.importance_weights, sample.masks, candidate_buffers)
    ]


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


class FirstOrder:
    """The ``"first_order"`` estimator (module docstring)."""

    name = "first_order"
    sample_type = FirstOrderSample

    def draw(
        self,
        key: torch.Tensor,
        logits: Sequence[torch.Tensor],
        table: _latency.LatencyTable | None,
        max_latency: float | None,
    ) -> tuple[torch.Tensor, FirstOrderSample]:
        """The path ``a`` from the (restricted) distribution, then one alternative per container."""
        logits = tuple(l.detach() for l in logits)
        new_key, path_key, alt_key = _random.split(key, 3)
        architecture = draw_path(path_key, logits, table, max_latency)
        if max_latency is None:
            masks = [torch.ones(l.numel(), dtype=torch.bool) for l in logits]
        else:
            masks = _selection.feasible_alternatives(architecture, table, max_latency)
        alternatives, weights = _alternatives(alt_key, logits, architecture, masks)
        return new_key, FirstOrderSample(architecture, alternatives, weights, masks)

    def trivial(self, sample: FirstOrderSample) -> bool:
        """No container has an alternative."""
        return list(sample.alternatives) == list(sample.architecture)

    def other_architecture(self, sample: FirstOrderSample) -> list[int]:
        """The alternatives: each runs on its container's inputs, so its batch norms are those of the
        alternatives' path."""
        return list(sample.alternatives)

    def installed(
        self,
        apply: Any,
        params: Mapping[str, torch.Tensor],
        other_buffers: Mapping[str, torch.Tensor],
        logits: Sequence[torch.Tensor],
        sample: FirstOrderSample,
    ) -> contextlib.AbstractContextManager[None]:
        """The paired container hooks; each alternative candidate runs on its buffers in ``other_buffers``."""
        space = apply.search_space
        names = apply.layout.container_names
        per_candidate = []
        for c, (container, j) in enumerate(zip(space.search_variants_containers, sample.alternatives)):
            prefix = f"{names[c]}.search_variants.{j}."
            per_candidate.append({n: other_buffers[prefix + n] for n, _ in container.search_variants[j].named_buffers()
                                  if prefix + n in other_buffers})
        return installed_hooks(space, paired_hooks(logits, sample, per_candidate))
