"""The search estimator protocol and its registry (``docs/design.md``, "Adding an estimator").

An :class:`Estimator` is everything one search step does differently from another estimator:

* :meth:`Estimator.draw` splits the key and draws the estimator's own sample (the path ``a`` the
  step runs and what it is compared with);
* :meth:`Estimator.trivial` says when a sample compares nothing (no other side runs and no other
  batch-norm statistics are tuned);
* :meth:`Estimator.other_architecture` names the path whose batch-norm statistics the other side
  of the comparison runs on;
* :meth:`Estimator.installed` installs the output mixing on the search space for as long as the
  path's forward runs: inside it the search space returns the output whose backward leaves the
  gradient estimate on the logits.

Both faces of the search step use these four and nothing else: ``ef.search_step`` runs the path
through a pure ``Apply`` inside :meth:`~Estimator.installed`; ``EnotSearchOptimizer`` runs the user's
closure inside it.  Estimators are registered once by name (:func:`register_estimator`); a name is
parsed into its estimator only where a user gives it (:func:`get_estimator`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from enot.functional import _latency, _selection

__all__ = [
    "Estimator",
    "available_estimators",
    "draw_path",
    "estimator_of",
    "get_estimator",
    "register_estimator",
]


@runtime_checkable
class Estimator(Protocol):
    """What a search estimator provides (structural: no base class to inherit).

    Attributes:
        name: The name users give (``estimator="two_path"``).
        sample_type: The type :meth:`draw` returns; a sample of this type is routed to this estimator.
    """

    name: str
    sample_type: type

    def draw(
        self,
        key: torch.Tensor,
        logits: Sequence[torch.Tensor],
        table: _latency.LatencyTable | None,
        max_latency: float | None,
    ) -> tuple[torch.Tensor, Any]:
        """Splits ``key`` and draws one sample; returns ``(new_key, sample)``.

        ``sample.architecture`` (``list[int]``) is the path the step runs and ``sample.alternatives``
        what it is compared with (both faces read these two fields).
        """

    def trivial(self, sample: Any) -> bool:
        """Whether ``sample`` compares nothing (a zero estimate: no other side runs or is tuned)."""

    def other_architecture(self, sample: Any) -> list[int]:
        """The path whose batch-norm statistics the other side of the comparison runs on."""

    def installed(
        self,
        apply: Any,
        params: Mapping[str, torch.Tensor],
        other_buffers: Mapping[str, torch.Tensor],
        logits: Sequence[torch.Tensor],
        sample: Any,
    ) -> contextlib.AbstractContextManager[None]:
        """Context manager: while it is open, ``apply.search_space``'s forward on ``sample.architecture``
        returns the mixed output (its backward leaves the estimate on ``logits``).

        Args:
            apply: The search space's pure forward (:func:`enot.functional.make_apply`), for the
                other side's forwards.
            params: Weights the other side runs with (detached).
            other_buffers: Buffers the other side runs with (its tuned batch-norm statistics).
            logits: Leaves the estimate flows to.
            sample: What :meth:`draw` returned.
        """


_REGISTRY: dict[str, Estimator] = {}


def register_estimator(estimator: Estimator) -> Estimator:
    """Registers ``estimator`` under ``estimator.name`` and returns it.

    Raises:
        TypeError: If ``estimator`` lacks a method or attribute of :class:`Estimator`.
        ValueError: If the name is taken.
    """
    if not isinstance(estimator, Estimator):
        raise TypeError(f"register_estimator expects an object with name, sample_type, draw, trivial, "
                        f"other_architecture and installed (the Estimator protocol), got {estimator!r}")
    if estimator.name in _REGISTRY:
        raise ValueError(f"an estimator named {estimator.name!r} is already registered")
    _REGISTRY[estimator.name] = estimator
    return estimator


def available_estimators() -> tuple[str, ...]:
    """Names of the registered estimators, in registration order (the default first)."""
    return tuple(_REGISTRY)


def get_estimator(estimator: str | Estimator, *, what: str = "estimator", where: str = "") -> Estimator:
    """The registered estimator named ``estimator`` (an :class:`Estimator` is returned as is).

    Args:
        estimator: A name the user gave, or an estimator object.
        what: How the error names the option (``"estimator"``).
        where: Prefix of the error message (``"EnotSearchOptimizer: "``).

    Raises:
        ValueError: If no estimator has that name.
    """
    if isinstance(estimator, str) and estimator in _REGISTRY:
        return _REGISTRY[estimator]
    if not isinstance(estimator, str) and isinstance(estimator, Estimator):
        return estimator
    raise ValueError(f"{where}unknown {what} {estimator!r}; use one of {list(_REGISTRY)}")


def estimator_of(sample: Any) -> Estimator:
    """The registered estimator whose :meth:`~Estimator.draw` makes samples of ``sample``'s type.

    Raises:
        TypeError: If no registered estimator makes that type.
    """
    for estimator in _REGISTRY.values():
        if isinstance(sample, estimator.sample_type):
            return estimator
    raise TypeError(f"{type(sample).__name__} is no registered estimator's sample; draw one with "
                    f"enot.functional.next_search_sample (estimators: {list(_REGISTRY)})")


def draw_path(
    key: torch.Tensor, logits: Sequence[torch.Tensor], table: _latency.LatencyTable | None, max_latency: float | None
) -> list[int]:
    """One architecture from ``softmax(logits)``, restricted exactly to ``latency <= max_latency``.

    Raises:
        ValueError: On a bound without a table, or a bound no architecture of positive probability meets.
    """
    return _selection.sample_feasible_architecture(key, logits, table, max_latency)  # the one feasible draw
