"""`EnotTrainOptimizer`: trains or tunes a plain network (phase 3), typically an extracted architecture."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from enot.facade._base import BaseEnotOptimizer, Closure, check_options

__all__ = ["EnotTrainOptimizer"]

_OPTIONS: tuple[str, ...] = ()


class EnotTrainOptimizer(BaseEnotOptimizer):
    """ENOT optimizer for the train and tune phases.

    A thin wrapper over the user's optimizer with the same ``model_step`` / ``step`` protocol as the
    other phases, so one training loop serves all three: :meth:`model_step` runs the closure
    (forward + ``loss.backward()``) and checks that its loss is finite, :meth:`step` lets the wrapped
    optimizer update the parameters.

    Args:
        model: PyTorch model to optimize, for example
            ``search_space.get_network_by_indexes(architecture)``.
        optimizer: PyTorch optimizer that performs the updates.
        **options: Reserved for experimental options; none is accepted at present.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or is still a search space (extract one
            architecture first), or ``optimizer`` is not a ``torch.optim.Optimizer``.
        ValueError: On an unknown option.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, **options: Any) -> None:
        from enot.models import SearchSpaceModel  # local: keeps this module importable on its own

        if isinstance(model, SearchSpaceModel):
            raise TypeError(
                "EnotTrainOptimizer trains one architecture, got a SearchSpaceModel; extract it first with "
                "search_space.get_network_by_indexes(architecture) (or use EnotPretrainOptimizer / "
                "EnotSearchOptimizer for the search space itself)"
            )
        check_options(type(self), options, _OPTIONS)
        super().__init__(model, optimizer)

    def _run_closure(self, closure: Closure) -> Any:
        result = closure()
        self._raise_if_not_finite(result, f"train step {self._step_count}", "weights")
        return result
