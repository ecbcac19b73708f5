"""`build_enot_optimizer`: the ENOT optimizer of a phase, chosen by name."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from enot.facade._base import BaseEnotOptimizer

__all__ = ["PHASES", "build_enot_optimizer"]

PHASES = ("pretrain", "search", "train")


def build_enot_optimizer(
    phase_name: str, model: nn.Module, optimizer: torch.optim.Optimizer, **options: Any
) -> BaseEnotOptimizer:
    """Builds and returns the ENOT optimizer of the given phase.

    - ``"pretrain"``: :class:`EnotPretrainOptimizer` (``model`` is a ``SearchSpaceModel``);
    - ``"search"``: :class:`EnotFixedLatencySearchOptimizer` when ``max_latency_value`` is among the
      options, else :class:`EnotSearchOptimizer` (``model`` is a ``SearchSpaceModel``);
    - ``"train"``: :class:`EnotTrainOptimizer` (``model`` is a plain network, e.g. an extracted one).

    Args:
        phase_name: One of ``"pretrain"``, ``"search"``, ``"train"``.
        model: PyTorch model to optimize.
        optimizer: PyTorch optimizer to be wrapped by the ENOT optimizer.
        **options: Options of the phase's optimizer (its constructor's keyword arguments).

    Returns:
        The phase's ENOT optimizer.

    Raises:
        ValueError: On an unknown phase name or an unknown option of the phase's optimizer.
        TypeError: If ``model`` does not suit the phase, or ``optimizer`` is not a ``torch.optim.Optimizer``.
    """
    if not isinstance(phase_name, str) or phase_name not in PHASES:
        raise ValueError(f"build_enot_optimizer: unknown phase_name {phase_name!r}; expected one of {PHASES}")
    if not isinstance(optimizer, torch.optim.Optimizer) or isinstance(optimizer, BaseEnotOptimizer):
        raise TypeError(
            f"build_enot_optimizer expects a torch.optim.Optimizer to wrap, got {type(optimizer).__name__}"
        )
    from enot.models import SearchSpaceModel

    if phase_name == "train":
        from enot.facade._train import EnotTrainOptimizer

        return EnotTrainOptimizer(model, optimizer, **options)
    if not isinstance(model, SearchSpaceModel):
        raise TypeError(
            f"build_enot_optimizer: the {phase_name!r} phase needs a SearchSpaceModel, got {type(model).__name__}; "
            "wrap your model with enot.models.SearchSpaceModel (use phase 'train' for an extracted network)"
        )
    if phase_name == "pretrain":
        from enot.facade._pretrain import EnotPretrainOptimizer

        return EnotPretrainOptimizer(model, optimizer, **options)
    from enot.facade._search import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer

    if "max_latency_value" in options:
        return EnotFixedLatencySearchOptimizer(model, optimizer, **options)
    return EnotSearchOptimizer(model, optimizer, **options)
