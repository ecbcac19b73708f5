"""Forward replay: modules that return given outputs instead of computing them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

__all__ = ["replaced_forwards"]


@contextlib.contextmanager
def replaced_forwards(outputs: Mapping[nn.Module, Callable[[], Any]]) -> Iterator[None]:
    """Context manager: each module ``m`` of ``outputs`` returns ``outputs[m]()`` when called.

    The module's own ``forward`` is not run (its inputs are ignored; its hooks still run); the
    instance's ``forward`` is restored on exit.  Used to replay recorded outputs: the shared prefix of
    a pretrain step (``_prefix.py``) and the constant part of a latency measurement
    (``enot.latency.initialize_latency``).
    """
    saved = {module: module.__dict__.get("forward") for module in outputs}
    for module, produce in outputs.items():
        module.forward = lambda *args, _produce=produce, **kwargs: _produce()
    try:
        yield
    finally:
        for module, previous in saved.items():
            if previous is None:
                del module.forward
            else:
                module.forward = previous
