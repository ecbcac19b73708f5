"""Refusing `DistributedDataParallel` around a search space: the ENOT optimizers reduce gradients themselves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DDP_MESSAGE", "check_not_ddp", "no_ddp_forward"]

DDP_MESSAGE = (
    "do not wrap the search space in DistributedDataParallel: the ENOT optimizer averages the gradients "
    "of the sampled path across processes itself (DDP would all-reduce every weight, including the "
    "candidates off the path, and fails on unused parameters); pass and call the bare SearchSpaceModel "
    "(see docs/distributed.md)"
)


def check_not_ddp(owner: str, model: object) -> None:
    """Raises ``TypeError`` if ``model`` is a ``DistributedDataParallel`` wrapper."""
    if isinstance(model, DistributedDataParallel):
        raise TypeError(f"{owner}: {DDP_MESSAGE}")


@contextlib.contextmanager
def no_ddp_forward(owner: str, model: nn.Module) -> Iterator[None]:
    """While active, a forward of ``model`` run by a ``DistributedDataParallel`` wrapper raises ``TypeError``."""

    def hook(module: nn.Module, args: tuple) -> None:
        if getattr(DistributedDataParallel, "_active_ddp_module", None) is not None:
            raise TypeError(f"{owner}: {DDP_MESSAGE}")

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
