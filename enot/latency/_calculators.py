"""Latency calculators: how one piece of a model is measured (``'mmac'``, ``'time'``, your own).

A calculator measures a *unit*: a zero-argument callable that runs the piece once.  It receives
``prepare``, which returns a fresh runnable (inputs copied outside any timed region) each call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch.utils.flop_counter import FlopCounterMode

from enot.functional.support import check_int

__all__ = [
    "LatencyCalculator",
    "MacCalculator",
    "TimeCalculator",
    "available_calculators",
    "get_calculator",
    "register_calculator",
]

Prepare = Callable[[], Callable[[], Any]]


class LatencyCalculator(Protocol):
    """What :func:`enot.latency.initialize_latency` needs from a calculator."""

    unit: str

    def measure(self, prepare: Prepare, *, batch_size: int, device: torch.device) -> float:
        """Latency of the unit that ``prepare()`` returns, in :attr:`unit`."""

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable details recorded in the latency container."""


class MacCalculator:
    """Millions of multiply-accumulates per sample, counted by ``torch.utils.flop_counter``.

    ``MACs = FLOPs / 2``; the FLOP counter covers matrix products and convolutions of any module
    (element-wise ops, normalisation and pooling count as zero).  Divided by the batch size.
    """

    unit = "MMAC per sample"

    def measure(self, prepare: Prepare, *, batch_size: int, device: torch.device) -> float:
        run = prepare()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            run()
        return counter.get_total_flops() / 2 / 1e6 / batch_size

    def metadata(self) -> dict[str, Any]:
        return {"unit": self.unit, "counter": "torch.utils.flop_counter"}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    return check_int(value, name, minimum=minimum, where="'time' latency: ")


class TimeCalculator:
    """Wall-clock milliseconds for the batch given, on the device the search space lives on.

    ``warmup`` untimed runs, then the median of ``repeats`` timed runs (CUDA is synchronised around
    each run).  ``num_threads``, if given, sets ``torch.set_num_threads`` during the measurement.
    """

    unit = "ms per batch"

    def __init__(self, warmup: int = 5, repeats: int = 25, num_threads: int | None = None) -> None:
        self.warmup = _positive_int("warmup", warmup, 0)
        self.repeats = _positive_int("repeats", repeats)
        self.num_threads = None if num_threads is None else _positive_int("num_threads", num_threads)

    def measure(self, prepare: Prepare, *, batch_size: int, device: torch.device) -> float:
        previous = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        try:
            with torch.no_grad():
                for _ in range(self.warmup):
                    prepare()()
                times = []
                for _ in range(self.repeats):
                    run = prepare()
                    sync()
                    start = time.perf_counter()
                    run()
                    sync()
                    times.append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(previous)
        return statistics.median(times) * 1e3

    def metadata(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "num_threads": self.num_threads if self.num_threads is not None else torch.get_num_threads(),
        }


_REGISTRY: dict[str, Callable[..., LatencyCalculator]] = {"mmac": MacCalculator, "time": TimeCalculator}
# Names that ENOT 2.x scripts pass; all count with PyTorch's FLOP counter here.
_ALIASES = {"mmac.thop": "mmac", "mmac.fvcore": "mmac", "mmac.pthflops": "mmac", "mmac.pytorch": "mmac"}


def available_calculators() -> list[str]:
    """The latency types :func:`enot.latency.initialize_latency` accepts (sorted, aliases excluded)."""
    return sorted(_REGISTRY)


def register_calculator(name: str, factory: Callable[..., LatencyCalculator]) -> None:
    """Adds a latency type: ``factory(**kwargs)`` returns a :class:`LatencyCalculator`.

    Raises:
        ValueError: If ``name`` is taken or not an identifier (it names ``latency_<name>`` methods).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"latency type name must be an identifier, got {name!r}")
    if name in _REGISTRY or name in _ALIASES:
        raise ValueError(f"latency type {name!r} is already registered")
    if not callable(factory):
        raise TypeError(f"calculator factory for {name!r} must be callable, got {factory!r}")
    _REGISTRY[name] = factory


def get_calculator(latency_type: str, **kwargs: Any) -> tuple[str, LatencyCalculator]:
    """The canonical type name and a calculator built with ``kwargs``.

    Raises:
        ValueError: On an unknown type or keyword argument.
    """
    name = _ALIASES.get(latency_type, latency_type)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown latency type {latency_type!r}; available: {available_calculators()} "
            f"(aliases: {sorted(_ALIASES)})"
        )
    try:
        return name, _REGISTRY[name](**kwargs)
    except TypeError as error:
        raise ValueError(f"latency type {name!r} got unsupported keyword arguments {sorted(kwargs)}: {error}") from None
