"""`LatencySource`: what a search space needs of a latency table, defined below `enot.latency`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from enot.functional import LatencyTable

__all__ = ["LatencySource"]


@runtime_checkable
class LatencySource(Protocol):
    """A latency table a :class:`SearchSpaceModel` can use (``enot.latency.SearchSpaceLatencyContainer``).

    ``enot.models`` sits below ``enot.latency``; it asks for these members only, never for the class.
    """

    @property
    def latency_type(self) -> str:
        """What the numbers are (``'mmac'``, ``'time'``, ...)."""

    @property
    def constant_latency(self) -> float:
        """Latency of everything outside the containers."""

    def table(self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> LatencyTable:
        """The :class:`enot.functional.LatencyTable` of the numbers."""

    def check_matches(self, n_choices: Sequence[int], container_names: Sequence[str] | None = None) -> None:
        """Raises ``ValueError`` if the container or candidate counts differ from ``n_choices``."""

    def attach(self, search_space: Any) -> None:
        """Called when ``search_space`` (with ``layout``) starts using the source: a later change that
        does not fit it must be refused."""

    def detach(self, search_space: Any) -> None:
        """Called when ``search_space`` stops using the source."""
