"""`EnotPretrainOptimizer`: trains the shared weights of a search space, one sampled path at a time."""

from __future__ import annotations

from typing import Any

import torch

import enot.functional as ef
from enot.facade import _checks
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
            (strict fairness: ``max(n_choices)`` paths per ``model_step``, every candidate trained) or
            ``"sandwich"`` (the sandwich rule: per ``model_step`` the largest path, the smallest and
            ``sandwich_random`` (default 2) uniform paths; largest and smallest by weight count,
            ``enot.functional.extreme_architectures``); with it ``distill`` (default ``True``: in-place
            distillation, the closure must call ``enot_optimizer.modify_loss(loss).backward()``, which
            replaces the loss of the paths after the largest by the soft cross-entropy against the
            largest's output, ``temperature`` default 1.0; ``False``: every path on the closure's own loss);
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

    _options = ("distill", "reducer", "sampler", "sandwich_random", "seed", "temperature")

    def __init__(
        self,
        search_space: SearchSpaceModel,
        optimizer: torch.optim.Optimizer,
        check_recommended_optimizations: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(search_space, optimizer, options)
        sampler = options.get("sampler", "uniform")
        allowed = (*ef.available_samplers(given=()), "sandwich")  # the registered samplers that need no logits
        if sampler not in allowed:
            raise ValueError(f"EnotPretrainOptimizer sampler must be one of {allowed}, got {sampler!r}")
        self._sampler = sampler
        self._sandwich = self._sandwich_options(options)
        self._role: str | None = None  # inside a sandwich closure: "teacher" or "student"
        self.check_recommended_optimizations = bool(check_recommended_optimizations)
        self.last_architectures: list[list[int]] = []

    def _sandwich_options(self, options: dict[str, Any]) -> ef.Sandwich | None:
        extra = sorted(k for k in ("distill", "sandwich_random", "temperature") if k in options)
        if self._sampler != "sandwich":
            if extra:
                raise ValueError(f"EnotPretrainOptimizer options {extra} need sampler='sandwich', got {self._sampler!r}")
            return None
        largest, smallest = ef.extreme_architectures(self.search_space.layout, dict(self.search_space.named_parameters()))
        sandwich = ef.Sandwich(tuple(largest), tuple(smallest), options.get("sandwich_random", 2),
                               options.get("distill", True), options.get("temperature", 1.0))
        return ef.check_sandwich(sandwich, self.search_space.layout.n_choices)

    def modify_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss a sandwich closure should differentiate (``sampler="sandwich"``, ``distill=True``).

        On the largest path it is ``loss`` itself; on the other paths it is
        ``enot.functional.distillation_loss`` of the search space's latest output in this closure
        against the largest path's output on the same step (``loss`` is then unused).  Without
        distillation it returns ``loss``.  The closure must call the search space once and then
        ``enot_optimizer.modify_loss(loss).backward()``.

        Raises:
            RuntimeError: If called outside a closure run by this optimizer, or before the search
                space was called in it.
        """
        if self._sandwich is None or not self._sandwich.distill:
            return loss
        if self._role is None:
            raise RuntimeError("EnotPretrainOptimizer.modify_loss must be called inside the closure passed to step/model_step")
        self._modified = True
        if self._last_output is None:
            raise RuntimeError("EnotPretrainOptimizer.modify_loss: call the search space in the closure before modify_loss")
        if self._role == "teacher":
            return loss
        return ef.distillation_loss(self._last_output, self._teacher, self._sandwich.temperature)

    def _run_sandwich_closure(self, closure: Closure, teacher: bool) -> Any:
        if not self._sandwich.distill:  # type: ignore[union-attr]
            return closure()

        def record(module: Any, args: Any, output: Any) -> None:
            self._last_output = output

        self._role, self._modified, self._last_output = ("teacher" if teacher else "student"), False, None
        handle = self.search_space.register_forward_hook(record)
        try:
            result = closure()
        finally:
            handle.remove()
            self._role = None
        if not self._modified:
            self.zero_grad()
            raise RuntimeError("EnotPretrainOptimizer(sampler='sandwich', distill=True): the closure must pass its loss "
                               "through enot_optimizer.modify_loss(loss) before backward() (or pass distill=False)")
        if teacher:
            self._teacher = self._last_output.detach() if isinstance(self._last_output, torch.Tensor) else self._last_output
        self._last_output = None
        return result

    def _check_params(self, groups: list[Any], new_group: bool = False) -> None:
        ss = self.search_space
        _checks.check_param_groups(
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
        n_choices = self.search_space.layout.n_choices
        if self._sandwich is not None:
            key, architectures = ef.sandwich_architectures(self._key, n_choices, self._sandwich)
        else:
            key, architectures = ef.next_architectures(self._key, n_choices, self._sampler)
        self._key = key
        self._note_architectures(architectures)
        results = []
        for i, architecture in enumerate(architectures):
            self.search_space.sample(architecture)
            result = closure() if self._sandwich is None else self._run_sandwich_closure(closure, teacher=i == 0)
            self._raise_if_not_finite(result, f"pretrain step {self._step_count}, architecture {architecture}", "weights")
            results.append(result)
        self.last_architectures = architectures
        if len(results) == 1:
            return results[0]
        if all(isinstance(r, torch.Tensor) for r in results):
            return torch.stack([r.detach() for r in results]).mean()
        return results[-1]
