"""The ``"two_path"`` search estimator (the default): unbiased, two forwards, no loss value needed.

Two architectures ``a, b`` drawn independently from the search distribution ``pi``
(``softmax(logits)``, restricted exactly to the latency bound when one is given) and a point
``s ~ U(0, 1)``.  The model's output is ``y_s = y_a + s (y_b - y_a)`` with the term
``stopgrad(y_b - y_a) * (g - stopgrad(g))``, ``g = (log p(b) - log p(a)) / 2``
(:func:`two_path_output`).  The backward pass gives ``<dl/dy(y_s), y_b - y_a> grad g``, and
``E_s <dl/dy(y_s), y_b - y_a> = l(y_b) - l(y_a)`` (the fundamental theorem of calculus on the
segment), so the estimate's expectation is ``E_{a,b}[(L(b) - L(a)) (grad log p(b) - grad log p(a))] / 2``
``= Cov_pi(L, grad log p) = grad E_pi[L]`` exactly, with or without a bound (the bound's normaliser
cancels in the difference).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import optree
import torch

from enot.functional import _latency, _random
from enot.functional._estimator import draw_path

__all__ = ["TwoPath", "TwoPathSample", "two_path_output"]


class TwoPathSample(NamedTuple):
    """What one ``"two_path"`` gradient computation samples.

    Attributes:
        architecture: The path ``a`` the step runs; its batch-norm statistics are kept.
        alternatives: The second architecture ``b``, drawn independently from the same distribution.
        position: The point ``s ~ U(0, 1)`` of the segment from ``y_a`` to ``y_b`` at which the loss
            is evaluated.
    """

    architecture: list[int]
    alternatives: list[int]
    position: float


def two_path_output(output: Any, other_output: Any, logits: Sequence[torch.Tensor], sample: Any) -> Any:
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


class TwoPath:
    """The ``"two_path"`` estimator (module docstring)."""

    name = "two_path"
    sample_type = TwoPathSample

    def draw(
        self,
        key: torch.Tensor,
        logits: Sequence[torch.Tensor],
        table: _latency.LatencyTable | None,
        max_latency: float | None,
    ) -> tuple[torch.Tensor, TwoPathSample]:
        """``a`` and ``b`` independently from the (restricted) distribution, and ``s ~ U(0, 1)``."""
        logits = tuple(l.detach() for l in logits)
        new_key, path_key, alt_key = _random.split(key, 3)
        architecture = draw_path(path_key, logits, table, max_latency)
        other_key, position_key = _random.split(alt_key, 2)
        other = draw_path(other_key, logits, table, max_latency)
        position = float(torch.rand((), generator=_random.generator(position_key), dtype=torch.float64))
        return new_key, TwoPathSample(architecture, other, position)

    def trivial(self, sample: TwoPathSample) -> bool:
        """``b == a``: a zero estimate, no second forward."""
        return list(sample.alternatives) == list(sample.architecture)

    def other_architecture(self, sample: TwoPathSample) -> list[int]:
        """``b``."""
        return list(sample.alternatives)

    @contextlib.contextmanager
    def installed(
        self,
        apply: Any,
        params: Mapping[str, torch.Tensor],
        other_buffers: Mapping[str, torch.Tensor],
        logits: Sequence[torch.Tensor],
        sample: TwoPathSample,
    ) -> Iterator[None]:
        """A forward hook on the search space: after path ``a``'s forward it runs path ``b`` without
        gradients (through ``apply``, on ``params`` and ``other_buffers``; its buffer changes dropped)
        and returns :func:`two_path_output`."""
        running = [False]

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            if running[0]:
                return None  # path b's own forward (apply calls the search space again)
            running[0] = True
            try:
                with torch.no_grad():
                    if self.trivial(sample):
                        other = output  # nothing to compare: a zero estimate, no second forward
                    else:
                        other, _ = apply(dict(params), other_buffers, sample.alternatives, *args, **kwargs)
            finally:
                running[0] = False
            with torch.enable_grad():
                return two_path_output(output, other, logits, sample)

        handle = apply.search_space.register_forward_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()
