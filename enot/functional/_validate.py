"""Argument validators: one ``ValueError``/``TypeError`` wording for every layer of ``enot``.

Each returns the value (converted where said) or raises naming the argument, the bad value and what
is allowed.  ``where`` prefixes the message (``"tune_bn_stats: "``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_callable", "check_int", "check_number"]


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
