"""Argument validators: one ``ValueError``/``TypeError`` wording for every layer of ``enot``.

Each returns the value (converted where said) or raises naming the argument, the bad value and what
is allowed.  ``where`` prefixes the message (``"tune_bn_stats: "``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["check_bound_value", "check_callable", "check_int", "check_number"]


def _int_phrase(minimum: int) -> str:
    return {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")


def check_int(value: Any, name: str, *, minimum: int = 0, optional: bool = False, where: str = "") -> Any:
    """``value`` if it is an ``int`` (not a ``bool``) ``>= minimum`` (or ``None`` when ``optional``).

    Raises:
        ValueError: Otherwise, e.g. ``"bins must be a positive int, got 0"``.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = _int_phrase(minimum) + (" or None" if optional else "")
        raise ValueError(f"{where}{name} must be {allowed}, got {value!r}")
    return value


def check_number(
    value: Any, name: str, *, minimum: float | None = 0.0, finite: bool = True, where: str = ""
) -> float:
    """``float(value)`` if ``value`` is an ``int``/``float`` (not a ``bool``) ``>= minimum``, and finite
    when ``finite`` (NaN is always refused).  ``minimum=None`` allows any number.

    Raises:
        ValueError: Otherwise, e.g. ``"latency_loss_weight must be a non-negative number, got -1"``.
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and not math.isnan(value)
    ok = ok and (math.isfinite(value) or not finite) and (minimum is None or value >= minimum)
    if not ok:
        bound = "" if minimum is None else "non-negative " if minimum == 0 else ""
        allowed = "a " + ("finite " if finite else "") + bound + "number"
        if minimum not in (None, 0):
            allowed += f" >= {minimum:g}"
        raise ValueError(f"{where}{name} must be {allowed}, got {value!r}")
    return float(value)


def check_callable(value: Any, name: str, *, where: str = "") -> Any:
    """``value`` if it is callable.

    Raises:
        TypeError: Otherwise.
    """
    if not callable(value):
        raise TypeError(f"{where}{name} must be callable, got {value!r}")
    return value


def check_bound_value(value: Any, name: str = "max_latency", *, where: str = "") -> float:
    """``float(value)`` for a latency bound: a real number (``int``, ``float``, a numpy number) or a
    one-element real tensor (``min_latency`` and ``forward_latency`` return 0-d ones).

    The one bound validator of ``enot``: every function and class that takes a latency bound reads it
    here, so they accept and refuse the same values.  ``inf`` is returned as is and means *no bound*
    everywhere in :mod:`enot.functional` (every architecture is feasible); whether a bound is
    reachable is checked against a table by ``enot.functional.check_latency_bound``.

    Raises:
        TypeError: If ``value`` is not a real number or a one-element real tensor (``bool`` included).
        ValueError: If it is NaN.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"{where}{name} must be a real number or a one-element real tensor, got a {value.dtype} tensor "
                f"of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where}{name} must be a real number, got {value!r} ({type(value).__name__}); "
            "a latency bound is a number or a one-element real tensor"
        )
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{where}{name} must be a number, not NaN (a latency bound; inf: none), got nan")
    return value
