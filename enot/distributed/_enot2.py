"""ENOT 2.x's names for the distributed helpers (as its ``multigpu_pretrain`` example uses them),
thin over :mod:`enot.distributed`'s own functions."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import optree
import torch
import torch.distributed as dist
from torch import nn

from enot.distributed._env import DistributedInfo, get_world_size, init_from_env, is_distributed, is_main_process

__all__ = [
    "extract_data_from_queue",
    "get_world_size",
    "init_torch",
    "is_dist",
    "is_local_master",
    "is_master",
    "local_rank",
    "sync_model",
]


def init_torch(
    cuda_optimize_for_speed: bool = False, *, backend: str | None = None, timeout_s: float | None = None
) -> DistributedInfo:
    """Joins the process group the launcher describes (``torchrun`` or ``torch.distributed.launch``)
    and selects this process's GPU: :func:`enot.distributed.init_from_env` under ENOT 2.x's name.

    Args:
        cuda_optimize_for_speed: Let cuDNN pick the fastest convolution algorithms for the shapes
            seen (``torch.backends.cudnn.benchmark = True``); results then vary slightly run to run.
        backend, timeout_s: As in :func:`enot.distributed.init_from_env`.

    Returns:
        :class:`enot.distributed.DistributedInfo` of this process.
    """
    info = init_from_env(backend, timeout_s=timeout_s)
    if cuda_optimize_for_speed and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    return info


def is_dist() -> bool:
    """Whether a process group with more than one process exists (:func:`is_distributed`)."""
    return is_distributed()


def is_master() -> bool:
    """Whether this is global rank 0 (:func:`is_main_process`)."""
    return is_main_process()


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK`` set by the launcher; 0 without one)."""
    value = os.environ.get("LOCAL_RANK", "0") if is_distributed() else "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable LOCAL_RANK must be an integer, got {value!r}") from None


def is_local_master() -> bool:
    """Whether this is the first process on its machine (local rank 0; true without a process group)."""
    return local_rank() == 0


@torch.no_grad()
def sync_model(model: nn.Module, reduce_parameters: bool = True, reduce_buffers: bool = True) -> nn.Module:
    """Makes ``model``'s parameters and buffers equal on every rank, in place.

    Each kind of tensor is either averaged over ranks (``reduce_* = True``) or copied from rank 0
    (``False``: the way to start every rank from the same initial weights).  Integer buffers
    (batch-norm's ``num_batches_tracked``) are always copied from rank 0.  Does nothing without a
    process group.

    Returns:
        ``model``.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"sync_model expects an nn.Module, got {type(model).__name__}")
    if not is_distributed():
        return model
    world = dist.get_world_size()
    parameters = list(model.parameters())
    buffers = list(model.buffers())
    for tensors, average in ((parameters, reduce_parameters), (buffers, reduce_buffers)):
        for t in tensors:
            if average and t.is_floating_point():
                dist.all_reduce(t.data, op=dist.ReduceOp.SUM)
                t.data.div_(world)
            else:
                dist.broadcast(t.data, src=0)
    return model


def _current_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def extract_data_from_queue(
    dataloader: Iterable[Any],
    data_parallel: bool = False,
    use_tqdm: bool = False,
    *,
    device: torch.device | str | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Iterates ``dataloader`` as ``(index, *item)`` with the item's tensors on this process's device.

    An item that is a tuple or list (``(inputs, labels)``) is unpacked after the index; any other
    item follows it as one value.

    Args:
        dataloader: Any iterable of batches.
        data_parallel: Move every tensor of each item to this process's device (the current CUDA
            device, which :func:`init_torch` sets to ``cuda:<LOCAL_RANK>``; the CPU without CUDA).
            With ``False`` the tensors stay where the loader put them (unless ``device`` is given).
        use_tqdm: Show a progress bar (needs ``tqdm``; without it, a warning and no bar).
        device: Move the tensors here instead.

    Yields:
        ``(index, *item)``.
    """
    target = torch.device(device) if device is not None else (_current_device() if data_parallel else None)
    iterable: Iterable[Any] = dataloader
    if use_tqdm:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            warnings.warn("extract_data_from_queue(use_tqdm=True) needs tqdm (pip install tqdm); no progress bar",
                          stacklevel=2)
        else:
            iterable = tqdm(dataloader)

    def move(tree: Any) -> Any:
        if target is None:
            return tree
        return optree.tree_map(lambda x: x.to(target, non_blocking=True) if isinstance(x, torch.Tensor) else x, tree)

    for index, item in enumerate(iterable):
        item = move(item)
        if isinstance(item, (tuple, list)):
            yield (index, *item)
        else:
            yield index, item
