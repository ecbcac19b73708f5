"""Batch-norm recalibration: `tune_bn_stats`."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

import enot.functional as ef
from enot.functional.support import check_int, check_iterable

__all__ = ["tune_bn_stats"]


@torch.no_grad()
def tune_bn_stats(
    model: nn.Module,
    dataloader: Iterable[Any],
    reset_bns: bool = True,
    set_momentums_none: bool = True,
    n_steps: int = 50,
    epochs: int = 1,
    sample_to_model_inputs: ef.InputsFn = ef.default_sample_to_model_inputs,
) -> None:
    """Recalibrates the batch-norm running statistics of ``model`` in place.

    Runs ``model`` without gradients on up to ``n_steps`` batches per epoch for ``epochs`` epochs,
    with only the batch-norm layers in training mode.  With ``reset_bns`` the statistics start from
    scratch; with ``set_momentums_none`` they are the cumulative average over the batches seen
    (``momentum=None``).  Modes and momentums are restored afterwards.  The statistics are computed
    by the pure :func:`enot.functional.bn_tune` and copied into the model's buffers.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``dataloader`` is not iterable.
        ValueError: If ``n_steps`` or ``epochs`` is not a positive int, or an epoch gets no batch
            (an empty loader, or a generator exhausted by an earlier epoch); the buffers are then
            left as they were.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"tune_bn_stats expects an nn.Module, got {type(model).__name__}")
    check_iterable("tune_bn_stats", "dataloader", dataloader)
    check_int(n_steps, "n_steps", minimum=1, where="tune_bn_stats: ")
    check_int(epochs, "epochs", minimum=1, where="tune_bn_stats: ")
    buffers = dict(model.named_buffers())
    if not ef.batch_norm_buffer_names(model):
        return
    params = {n: p.detach() for n, p in model.named_parameters()}

    def batches() -> Iterator[Any]:
        for epoch in range(epochs):
            count = 0
            for batch in itertools.islice(dataloader, n_steps):
                count += 1
                yield batch
            if count == 0:  # raised inside the pure tuning: nothing is copied into the model
                raise ValueError(
                    f"tune_bn_stats: epoch {epoch + 1} of {epochs} got no batch from the dataloader (it is empty, or "
                    "a one-pass iterator such as a generator exhausted by an earlier epoch: give a DataLoader or a "
                    "list); the batch-norm statistics are unchanged"
                )

    new = ef.bn_tune(
        model, params, buffers, batches(), sample_to_model_inputs=sample_to_model_inputs,
        reset=reset_bns, cumulative=set_momentums_none,
    )
    for name, value in new.items():
        if value is not buffers[name]:
            buffers[name].copy_(value)
