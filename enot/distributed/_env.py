"""Process-group set-up from ``torchrun``'s environment and the rank queries every script needs."""

from __future__ import annotations

import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = [
    "DistributedInfo",
    "barrier",
    "destroy",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
]

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedInfo(NamedTuple):
    """Where this process stands in the job.

    Attributes:
        rank: Global rank (0 on a single process).
        world_size: Number of processes (1 on a single process).
        local_rank: Rank on this machine (``LOCAL_RANK``), which picks the GPU.
        device: The device this process should compute on (``cuda:<local_rank>`` or ``cpu``).
        backend: The process group's backend, ``None`` when no group was made.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def init_from_env(backend: str | None = None, *, timeout_s: float | None = None) -> DistributedInfo:
    """Joins the process group that ``torchrun`` describes in the environment.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by
    ``torchrun``) and calls ``torch.distributed.init_process_group``.  Without ``WORLD_SIZE`` (a plain
    ``python script.py``) or with ``WORLD_SIZE=1`` it makes no group and returns the single-process
    info, so one script runs both ways.  On CUDA it also selects ``cuda:<LOCAL_RANK>``.  Calling it
    again once the group exists returns the info of that group.

    Args:
        backend: ``"nccl"``, ``"gloo"``...; default ``"nccl"`` when CUDA is available, else ``"gloo"``.
        timeout_s: Seconds a collective waits for the other ranks before it raises (PyTorch's default
            when ``None``).  A short timeout turns a rank that died into an error instead of a hang.

    Returns:
        :class:`DistributedInfo` of this process.

    Raises:
        ValueError: If ``WORLD_SIZE`` > 1 and a variable ``torchrun`` sets is missing or malformed, or
            ``timeout_s`` is not positive.
    """
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return DistributedInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, dist.get_backend())
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedInfo(0, 1, 0, torch.device("cuda", 0) if cuda else torch.device("cpu"), None)
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={world_size} but {missing} are not set; launch with torchrun "
            "(torchrun --nproc-per-node=N script.py) or set them as torchrun does"
        )
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed; it cannot run with WORLD_SIZE > 1")
    if backend is None:
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(device)
    kwargs = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def is_distributed() -> bool:
    """Whether a process group with more than one process exists."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's global rank, 0 without a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes in the job, 1 without a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this is rank 0 (the process that logs and writes checkpoints)."""
    return get_rank() == 0


def barrier() -> None:
    """Waits for every rank (does nothing without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    """Leaves the process group, if any (call it at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
