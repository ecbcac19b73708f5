"""Rank-0-only printing and checkpointing for ``torchrun`` scripts."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from enot.distributed._env import barrier, is_main_process

__all__ = ["main_process_only", "print_main", "save_checkpoint"]

T = TypeVar("T")


def main_process_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Decorator: the function runs on rank 0 only and returns ``None`` on every other rank."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


def print_main(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only (flushed, so lines of a ``torchrun`` job appear as they happen)."""
    if is_main_process():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def save_checkpoint(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
    """``enot.utils.save_checkpoint`` on rank 0, then a barrier so no rank reads a half-written file.

    Every rank holds the same weights, optimizer state and sampler key after each step, so rank 0's
    copy is the job's.  To resume, every rank calls ``enot.utils.load_checkpoint`` on the same file
    (with ``map_location`` set to its device); the global random generators of rank 0 are then
    restored on every rank (pass ``restore_rng=False`` to keep each rank's own).
    """
    from enot.utils import save_checkpoint as _save  # enot.utils imports models; keep this package light

    if is_main_process():
        _save(path, *args, **kwargs)
    barrier()
