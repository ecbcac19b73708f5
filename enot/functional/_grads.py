"""The end of a step's gradient loop, shared by the pretrain and search steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from enot.functional._types import ReduceFn, Tree

__all__ = ["add_gradients_", "all_finite", "check_finite_loss", "reduce_and_check"]


def add_gradients_(total: Tree, grads: Mapping[str, torch.Tensor | None]) -> Tree:
    """Adds ``grads`` into the accumulator ``total`` in place (``None`` entries skipped); returns it.

    New tensors are made (``total[n] + g``), so no tensor a caller gave is changed.
    """
    for name, grad in grads.items():
        if grad is not None:
            total[name] = total[name] + grad if name in total else grad
    return total


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite, with one reduction per device and dtype.

    The max-abs norm (``torch.nn.utils.get_total_norm`` with ``norm_type=inf``) propagates NaN and
    infinity and cannot overflow, so it is finite exactly when every element is.  Sparse tensors are
    checked through their values.
    """
    tensors = [t.coalesce().values() if t.is_sparse else t for t in tensors]
    tensors = [t for t in tensors if t.numel()]
    if not tensors:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors, norm_type=float("inf"))))


def check_finite_loss(
    step: torch.Tensor, architecture: Sequence[int], loss: torch.Tensor, *, phase: str = "pretrain", kept: str = "weights"
) -> None:
    """Raises ``FloatingPointError`` naming the step and architecture if ``loss`` is not finite."""
    if not torch.isfinite(loss).all():
        raise FloatingPointError(
            f"{phase} step {int(step)}: the loss of architecture {architecture} is "
            f"{loss.item() if loss.numel() == 1 else loss}; {kept} were not updated"
        )


def reduce_and_check(
    grads: Tree,
    architectures: Sequence[Sequence[int]],
    losses: Sequence[torch.Tensor],
    *,
    step: torch.Tensor,
    phase: str,
    kept: str,
    check_finite: bool,
    reduce_grads: ReduceFn | None,
) -> Tree:
    """Reduces the summed gradients across processes, then checks the losses (and reduced gradients).

    With ``reduce_grads`` the check runs after the reduction and also covers the reduced gradients,
    so that a non-finite loss on one rank makes every rank raise together.

    Raises:
        FloatingPointError: If ``check_finite`` and a loss (or a reduced gradient) is NaN or infinite,
            naming the step and the first such architecture (or weights).
    """
    if reduce_grads is not None:
        grads = dict(reduce_grads(grads))
    if check_finite:
        for architecture, loss in zip(architectures, losses):
            check_finite_loss(step, architecture, loss, phase=phase, kept=kept)
        bad = [n for n, g in grads.items() if not torch.isfinite(g).all()] if reduce_grads is not None else []
        if bad:
            raise FloatingPointError(
                f"{phase} step {int(step)}: the reduced gradients of {bad[:3]} are not finite "
                f"(a loss on another rank was NaN or infinite); {kept} were not updated"
            )
    return grads
