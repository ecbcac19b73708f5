"""`EnotPretrainOptimizer`: trains the shared weights of a search space, one sampled path at a time."""

from __future__ import annotations

from typing import Any

import torch

import enot.functional as ef
from enot.functional import _guards
from enot.facade._base import Closure
from enot.facade._phase import SearchSpaceOptimizer
from enot.models import SearchSpaceModel

__all__ = ["EnotPretrainOptimizer"]


class EnotPretrainOptimizer(SearchSpaceOptimizer):
    """ENOT optimizer for the pretrain phase.

    Every :meth:`model_step` samples new architectures from the optimizer's random key
    (``enot.functional.next_architectures``), selects each in the search space and runs the closure
    once per architecture, so gradients accumulate on the sampled paths only; :meth:`step` lets the
    wrapped optimizer update the parameters that received a gradient.  Parameters off the path keep
    ``.grad is None``, so ``torch.optim`` leaves them and their state untouched.

    Args:
        search_space: Search space model to optimize.
        optimizer: PyTorch optimizer that performs the updates (over ``search_space.model_parameters()``).
        check_recommended_optimizations: Refuse to step before
            ``search_space.initialize_output_distribution_optimization`` was called.
        **options: ``sampler``: ``"uniform"`` (default: one path per ``model_step``) or ``"fair"``
            (strict fairness: ``max(n_choices)`` paths per ``model_step``, every candidate trained);
            ``seed``: integer seed of the architecture sampler (default 0; give every rank the same);
            ``reducer``: ``"auto"`` (default: an ``enot.distributed.GradientReducer`` when a process group
            of several ranks exists), ``None`` or a ``GradientReducer``.  With a reducer, :meth:`step`
            checks that all ranks sampled the same architectures, averages the path's gradients and
            batch-norm statistics across ranks, then updates (see ``docs/distributed.md``).

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpaceModel`` (also when it is wrapped in
            ``DistributedDataParallel``, which the closure must not call either) or ``optimizer`` not a
            ``torch.optim.Optimizer``.
        ValueError: On an unknown option or a bad option value, or if ``optimizer`` holds none of
            ``search_space.model_parameters()`` (it would learn nothing; also in :meth:`add_param_group`).
    """

    _options = ("reducer", "sampler", "seed")

    def __init__(
        self,
        search_space: SearchSpaceModel,
        optimizer: torch.optim.Optimizer,
        check_recommended_optimizations: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(search_space, optimizer, options)
        sampler = options.get("sampler", "uniform")
        allowed = ef.available_samplers(given=())  # the registered samplers that need no logits
        if sampler not in allowed:
            raise ValueError(f"EnotPretrainOptimizer sampler must be one of {allowed}, got {sampler!r}")
        self._sampler = sampler
        self.check_recommended_optimizations = bool(check_recommended_optimizations)
        self.last_architectures: list[list[int]] = []

    def _check_params(self, groups: list[Any], new_group: bool = False) -> None:
        ss = self.search_space
        _guards.check_param_groups(
            type(self).__name__, groups,
            expected=ss.model_parameters(), expected_name="search_space.model_parameters()",
            other=ss.architecture_parameters(),
            other_name="search_space.architecture_parameters() (the logits, trained in search)", new_group=new_group,
        )

    def _reduce_buffers(self, architectures: list[Any]) -> None:
        names = {n for archs in architectures for a in archs for n in ef.path_names(self.search_space.layout, a)}
        assert self._reducer is not None
        self._reducer.reduce_buffers_(b for n, b in self.search_space.named_buffers() if n in names)

    def _snapshot(self) -> dict[str, Any]:
        return {**super()._snapshot(), "last_architectures": self.last_architectures}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        super()._restore(snapshot)
        self.last_architectures = snapshot["last_architectures"]

    def _run_closure(self, closure: Closure) -> Any:
        if self.check_recommended_optimizations and not self.search_space.output_distribution_optimization_enabled:
            raise RuntimeError(
                "EnotPretrainOptimizer: call search_space.initialize_output_distribution_optimization(sample_inputs) "
                "once before pretraining (or pass check_recommended_optimizations=False)"
            )
        self._key, architectures = ef.next_architectures(self._key, self.search_space.layout.n_choices, self._sampler)
        self._note_architectures(architectures)
        results = []
        for architecture in architectures:
            self.search_space.sample(architecture)
            result = closure()
            self._raise_if_not_finite(result, f"pretrain step {self._step_count}, architecture {architecture}", "weights")
            results.append(result)
        self.last_architectures = architectures
        if len(results) == 1:
            return results[0]
        if all(isinstance(r, torch.Tensor) for r in results):
            return torch.stack([r.detach() for r in results]).mean()
        return results[-1]
