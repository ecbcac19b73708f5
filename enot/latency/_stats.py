"""Latency statistics over all architectures of a search space, and of its chosen architectures."""

from __future__ import annotations

from typing import Union

import enot.functional as ef
from enot.functional import support
from enot.latency._container import SearchSpaceLatencyContainer
from enot.models import SearchSpaceModel

__all__ = [
    "best_arch_latency",
    "current_latency",
    "max_latency",
    "mean_latency",
    "median_latency",
    "min_latency",
    "reset_latency",
]

ContainerOrSpace = Union[SearchSpaceLatencyContainer, SearchSpaceModel]


def _container(source: ContainerOrSpace) -> SearchSpaceLatencyContainer:
    if isinstance(source, SearchSpaceLatencyContainer):
        return source
    if isinstance(source, SearchSpaceModel):
        return source.get_latency_container()
    raise TypeError(
        f"expected a SearchSpaceLatencyContainer or a SearchSpaceModel, got {type(source).__name__}"
    )


def _search_space(search_space: SearchSpaceModel) -> SearchSpaceModel:
    if not isinstance(search_space, SearchSpaceModel):
        raise TypeError(f"expected a SearchSpaceModel, got {type(search_space).__name__}")
    return search_space


def min_latency(source: ContainerOrSpace) -> float:
    """Smallest latency over all architectures (exact)."""
    return float(ef.min_latency(_container(source).table()))


def max_latency(source: ContainerOrSpace) -> float:
    """Largest latency over all architectures (exact)."""
    return float(ef.max_latency(_container(source).table()))


def mean_latency(source: ContainerOrSpace) -> float:
    """Mean latency over all architectures, each counted once (exact)."""
    return float(ef.mean_latency(_container(source).table()))


def median_latency(
    source: ContainerOrSpace,
    *,
    max_architectures: int = support.MAX_ENUMERATE,
    bins: int = support.DEFAULT_BINS,
) -> float:
    """Median latency over all architectures, each counted once (mean of the two middle values).

    Exact when the space has at most ``max_architectures`` (default ``2**20``) architectures;
    otherwise from the exact distribution of the sum on a grid of ``bins`` steps, within
    ``n_containers * (max_latency - min_latency) / (2 * bins)`` of the exact value (see
    :func:`enot.functional.latency_distribution`).
    """
    table = _container(source).table()
    return float(ef.median_latency(table, max_architectures=max_architectures, bins=bins))


def current_latency(search_space: SearchSpaceModel) -> float:
    """Latency of the selected architecture (:attr:`SearchSpaceModel.forward_architecture`)."""
    search_space = _search_space(search_space)
    table = search_space.get_latency_container().table()
    return float(ef.architecture_latency(search_space.forward_architecture, table))


def best_arch_latency(search_space: SearchSpaceModel) -> float:
    """Latency of the most probable architecture (:attr:`SearchSpaceModel.best_architecture_int`)."""
    search_space = _search_space(search_space)
    table = search_space.get_latency_container().table()
    return float(ef.architecture_latency(search_space.best_architecture_int, table))


def reset_latency(search_space: SearchSpaceModel) -> None:
    """Removes the latency container from ``search_space`` (its ``latency_type`` becomes ``None``)."""
    _search_space(search_space).remove_latency_container()
