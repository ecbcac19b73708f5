"""Pure batch-norm tuning: recompute running statistics from batches, returning new buffers."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from enot.functional import _layout
from enot.functional._types import InputsFn, default_sample_to_model_inputs
from enot.functional._validate import check_int

__all__ = ["batch_norm_buffer_names", "bn_tune", "frozen_batch_norm"]

_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _norms(module: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def batch_norm_buffer_names(module: nn.Module, architecture: Sequence[int] | None = None) -> tuple[str, ...]:
    """Names of the running-statistics buffers of ``module``'s batch norms (on ``architecture``'s path).

    ``architecture`` needs a search space (a module with a ``layout``); ``None`` means every batch norm.
    """
    names = tuple(
        f"{prefix}.{stat}" if prefix else stat
        for prefix, m in _norms(module)
        for stat in _STATS
        if getattr(m, stat, None) is not None
    )
    if architecture is None:
        return names
    on_path = set(_layout.path_names(module.layout, architecture))
    return tuple(n for n in names if n in on_path)


@contextlib.contextmanager
def frozen_batch_norm(module: nn.Module) -> Iterator[None]:
    """Context manager: every batch norm of ``module`` in evaluation mode inside, modes restored after."""
    norms = [m for _, m in _norms(module)]
    modes = [m.training for m in norms]
    try:
        for m in norms:
            m.eval()
        yield
    finally:
        for m, mode in zip(norms, modes):
            m.training = mode


@contextlib.contextmanager
def _tuning_modes(module: nn.Module, cumulative: bool) -> Iterator[None]:
    modes = {m: m.training for m in module.modules()}
    norms = [m for _, m in _norms(module)]
    momentums = [m.momentum for m in norms]
    try:
        module.eval()
        for m in norms:
            m.train()
            if cumulative:
                m.momentum = None
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode
        for m, momentum in zip(norms, momentums):
            m.momentum = momentum


def _reset(name: str, value: torch.Tensor) -> torch.Tensor:
    if name.endswith("running_var"):
        return torch.ones_like(value)
    return torch.zeros_like(value)


@torch.no_grad()
def bn_tune(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    batches: Iterable[Any],
    *,
    architecture: Sequence[int] | None = None,
    max_batches: int | None = None,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    reset: bool = True,
    cumulative: bool = True,
) -> dict[str, torch.Tensor]:
    """Recomputes batch-norm running statistics from ``batches``; returns new buffers.

    Runs ``module`` without gradients through ``torch.func.functional_call`` with the given weights
    and buffers on each batch (at most ``max_batches``), every module in evaluation mode except the
    batch norms.  With ``reset`` the statistics start from zero mean, unit variance and no batches
    seen; with ``cumulative`` they are the cumulative average over the batches (``momentum=None``:
    ``running_mean`` is the mean of the batch means, ``running_var`` the mean of the unbiased
    batch variances), otherwise the batch norms' own momentum applies.  Modes and momentums are
    restored afterwards.

    Args:
        module: Any ``nn.Module``; a search space when ``architecture`` is given.
        params: Weights ``{name: tensor}`` (missing ones fall back to the module's own).
        buffers: Buffers ``{name: tensor}``; never mutated.
        batches: Dataloader items (an iterable, consumed lazily).
        architecture: Tune this path of a search space (only its batch norms are reset and
            returned changed); ``None`` tunes every batch norm of the module as it is selected.
        max_batches: Stop after this many batches (``None``: all of ``batches``).
        sample_to_model_inputs: Maps one item to ``(args, kwargs)`` of the module.
        reset: Start the statistics from scratch.
        cumulative: Use the cumulative average (``momentum=None``).

    Returns:
        A new buffer dict: the tuned statistics are new tensors, every other entry is the input's.

    Raises:
        ValueError: If ``max_batches`` is negative, or no batch ran (``batches`` empty or an exhausted
            iterator, or ``max_batches=0``): statistics reset and tuned on nothing would be mean 0,
            variance 1; nothing is returned instead (the input buffers are never changed).
    """
    check_int(max_batches, "max_batches", minimum=0, optional=True)
    names = batch_norm_buffer_names(module, architecture)
    tuned = {n: (_reset(n, buffers[n]) if reset else buffers[n].clone()) for n in names if n in buffers}
    new_buffers = {**buffers, **tuned}
    if max_batches is not None:
        batches = itertools.islice(batches, max_batches)
    selected = module.selected(architecture) if architecture is not None else contextlib.nullcontext()
    trees = {**params, **new_buffers}
    if architecture is not None:  # only the path's tensors are swapped in (the rest is never read)
        on_path = set(_layout.path_names(module.layout, architecture))
        trees = {n: t for n, t in trees.items() if n in on_path}
    # One swap of the tensors for all batches (not one functional_call per batch).
    loop = _Loop(module, sample_to_model_inputs)
    with _tuning_modes(module, cumulative), selected:
        torch.func.functional_call(loop, {f"module.{n}": t for n, t in trees.items()}, (batches,), strict=False)
    if loop.count == 0:
        why = "max_batches=0" if max_batches == 0 else "batches is empty or an exhausted iterator"
        raise ValueError(
            f"bn_tune ran on no batch ({why}); give a non-empty list or DataLoader (a generator can be read only "
            "once); the buffers are unchanged"
        )
    return new_buffers


class _Loop(nn.Module):
    """Runs ``module`` on every batch (so that ``functional_call`` swaps the tensors once)."""

    def __init__(self, module: nn.Module, sample_to_model_inputs: InputsFn) -> None:
        super().__init__()
        self.module = module
        self._inputs = sample_to_model_inputs
        self.count = 0  # batches run

    def forward(self, batches: Iterable[Any]) -> None:
        for batch in batches:
            self.count += 1
            args, kwargs = self._inputs(batch)
            self.module(*args, **kwargs)
