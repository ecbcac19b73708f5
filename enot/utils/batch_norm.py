"""Batch-norm recalibration: `tune_bn_stats`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from enot.utils.dataloader2model import default_sample_to_model_inputs

__all__ = ["tune_bn_stats"]


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"tune_bn_stats: {name} must be a positive int, got {value!r}")


@torch.no_grad()
def tune_bn_stats(
    model: nn.Module,
    dataloader: Iterable[Any],
    reset_bns: bool = True,
    set_momentums_none: bool = True,
    n_steps: int = 50,
    epochs: int = 1,
    sample_to_model_inputs: Callable[[Any], tuple[tuple, dict]] = default_sample_to_model_inputs,
) -> None:
    """Recalibrates the batch-norm running statistics of ``model`` in place.

    Runs ``model`` without gradients on up to ``n_steps`` batches per epoch for ``epochs`` epochs,
    with only the batch-norm layers in training mode.  With ``reset_bns`` the statistics start from
    scratch; with ``set_momentums_none`` they are the cumulative average over the batches seen
    (``momentum=None``).  Modes and momentums are restored afterwards.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
        ValueError: If ``n_steps`` or ``epochs`` is not a positive int.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"tune_bn_stats expects an nn.Module, got {type(model).__name__}")
    _check_count("n_steps", n_steps)
    _check_count("epochs", epochs)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    modes = {m: m.training for m in model.modules()}
    momentums = {m: m.momentum for m in norms}
    try:
        model.eval()
        for m in norms:
            m.train()
            if reset_bns:
                m.reset_running_stats()
            if set_momentums_none:
                m.momentum = None
        for _ in range(epochs):
            for step, sample in enumerate(dataloader):
                if step >= n_steps:
                    break
                args, kwargs = sample_to_model_inputs(sample)
                model(*args, **kwargs)
    finally:
        for m, mode in modes.items():
            m.training = mode
        for m, momentum in momentums.items():
            m.momentum = momentum
