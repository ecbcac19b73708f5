"""`ResolutionSearcherWithFixedLatencyIterator`: one fixed-latency search per resolution tried."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import optree
import torch

from enot import functional as F
from enot.experimental._resolution_strategies import ConstantResolutionStrategy
from enot.facade import EnotFixedLatencySearchOptimizer
from enot.latency import SearchSpaceLatencyContainer, initialize_latency, min_latency

__all__ = ["ResolutionSearcherWithFixedLatencyIterator", "next_resolution", "shrink_bracket"]

_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...: golden-section step


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"ResolutionSearcherWithFixedLatencyIterator: {name} must be a positive int, got {value!r}")
    return value


class ResolutionSearcherWithFixedLatencyIterator:
    """Finds the input resolution and the architecture that give the best metric under a latency bound.

    Iterating yields ``(resolution, strategy)`` pairs.  For each, run a search phase with
    ``enot_optimizer`` on loaders wrapped by ``strategy`` (a :class:`ConstantResolutionStrategy`),
    validate, and pass the metric (higher is better) to :meth:`set_resolution_target_metric` before the
    next iteration.  Before yielding a resolution the iterator

    - restores the search space (weights, buffers, architecture parameters) and ``enot_optimizer``'s
      state (the wrapped optimizer's state and learning rates, the sampler key) to what they were
      when iteration began, so each resolution starts from the same point;
    - initialises the space's latency at that resolution (``initialize_latency(latency_type, ...)`` on
      the first batch of ``dataloader`` resized to it), so the optimizer's bound
      ``max_latency_value`` applies to the latency *at that resolution*.

    Resolutions are chosen by golden-section search over ``[min_resolution, max_resolution]`` (the
    metric is assumed unimodal in the resolution: larger images, smaller architectures) until the
    bracket is at most ``resolution_tolerance`` wide.  Latency grows with the resolution, so the range
    is first cut (by bisection on latencies alone) to the resolutions at which some architecture
    meets the bound.  When iteration ends the search space holds the state it had at the end of the
    best resolution's search, with that resolution's latency applied and :attr:`best_architecture`
    selected: its latency is within the bound.

    Args:
        enot_optimizer: An :class:`enot.optimize.EnotFixedLatencySearchOptimizer`; it may be built
            before the search space has latency.
        dataloader: Loader whose first batch (images first, ``N x C x H x W``) measures latency.
        latency_type: Latency type for :func:`enot.latency.initialize_latency` (``'mmac'``, ...).
        min_resolution, max_resolution: Range of square resolutions searched, inclusive.
        resolution_tolerance: The search stops when the bracket is at most this wide.
        latency_kwargs: Extra keyword arguments of ``initialize_latency`` (calculator options).

    Raises:
        TypeError: If ``enot_optimizer`` is not an ``EnotFixedLatencySearchOptimizer``.
        ValueError: On bad resolutions or tolerance; when iterating, if no architecture meets the
            bound even at ``min_resolution`` (the message gives the minimum latency there).
        RuntimeError: If the next resolution is requested before :meth:`set_resolution_target_metric`.
    """

    def __init__(
        self,
        enot_optimizer: EnotFixedLatencySearchOptimizer,
        dataloader: Iterable[Any],
        latency_type: str,
        min_resolution: int,
        max_resolution: int,
        resolution_tolerance: int = 8,
        *,
        latency_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(enot_optimizer, EnotFixedLatencySearchOptimizer):
            raise TypeError(
                "ResolutionSearcherWithFixedLatencyIterator needs an EnotFixedLatencySearchOptimizer (its "
                f"max_latency_value is the bound at every resolution), got {type(enot_optimizer).__name__}"
            )
        self.min_resolution = _positive_int("min_resolution", min_resolution)
        self.max_resolution = _positive_int("max_resolution", max_resolution)
        if self.min_resolution > self.max_resolution:
            raise ValueError(f"ResolutionSearcherWithFixedLatencyIterator: min_resolution={min_resolution} is "
                             f"above max_resolution={max_resolution}")
        self.resolution_tolerance = _positive_int("resolution_tolerance", resolution_tolerance)
        if not isinstance(latency_type, str):
            raise TypeError(f"latency_type must be a string, got {latency_type!r}")
        self.enot_optimizer = enot_optimizer
        self.search_space = enot_optimizer.search_space
        self.dataloader = dataloader
        self.latency_type = latency_type
        self.latency_kwargs = dict(latency_kwargs or {})
        self.metrics: dict[int, float] = {}  # resolution -> metric, in the order tried
        self.architectures: dict[int, list[int]] = {}
        self._latencies: dict[int, SearchSpaceLatencyContainer] = {}
        self._sample: Any = None
        self._pending: int | None = None
        self._best: tuple[int, list[int], dict[str, Any]] | None = None  # resolution, architecture, space state

    # ------------------------------------------------------------------------------ results
    @property
    def best_resolution(self) -> int:
        """The resolution with the highest metric so far.

        Raises:
            RuntimeError: If no metric was set yet.
        """
        return self._require_best()[0]

    @property
    def best_architecture(self) -> list[int]:
        """The architecture selected within the bound at :attr:`best_resolution` (``list[int]``)."""
        return list(self._require_best()[1])

    def _require_best(self) -> tuple[int, list[int], dict[str, Any]]:
        if self._best is None:
            raise RuntimeError("no resolution has a metric yet; iterate the searcher and call "
                               "set_resolution_target_metric(metric) after each resolution's search")
        return self._best

    def set_resolution_target_metric(self, metric: float) -> None:
        """Records the validation metric (higher is better) of the resolution just searched.

        The architecture it belongs to is the one the optimizer selects within the bound
        (``prepare_validation_model``) at that resolution.

        Raises:
            RuntimeError: If no resolution is waiting for its metric.
            ValueError: If ``metric`` is not a finite number.
        """
        if self._pending is None:
            raise RuntimeError("set_resolution_target_metric: no resolution is waiting for a metric; call it once "
                               "after the search at each resolution the iterator yields")
        if isinstance(metric, torch.Tensor) and metric.numel() == 1:
            metric = metric.item()
        if isinstance(metric, bool) or not isinstance(metric, (int, float)) or not math.isfinite(metric):
            raise ValueError(f"set_resolution_target_metric: metric must be a finite number, got {metric!r}")
        resolution, self._pending = self._pending, None
        table = self.search_space.get_latency_container().table(dtype=torch.float64)
        logits = tuple(self.search_space.architecture_parameters())
        architecture = F.select_architecture(logits, table, self.enot_optimizer.max_latency_value)
        self.metrics[resolution] = float(metric)
        self.architectures[resolution] = list(architecture)
        if self._best is None or metric > self.metrics[self._best[0]]:
            self._best = (resolution, list(architecture), _copy_state(self.search_space.state_dict()))

    # ---------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[tuple[int, ConstantResolutionStrategy]]:
        self.metrics, self.architectures, self._best, self._pending = {}, {}, None, None  # a fresh search
        space_state = _copy_state(self.search_space.state_dict())
        optimizer_state = copy.deepcopy(self.enot_optimizer.state_dict())
        low, high = self.min_resolution, self._largest_feasible_resolution()
        while True:
            resolution = self._next_resolution(low, high)
            if resolution is None:
                break
            self.search_space.load_state_dict(space_state)
            self.enot_optimizer.zero_grad()
            self.enot_optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            self.search_space.apply_latency_container(self._latency(resolution))
            self._pending = resolution
            yield resolution, ConstantResolutionStrategy(resolution)
            if self._pending is not None:
                raise RuntimeError(
                    f"the search at resolution {resolution} has no metric; call "
                    "set_resolution_target_metric(metric) before the next iteration"
                )
            low, high = self._bracket(low, high)
        resolution, architecture, state = self._require_best()
        self.search_space.load_state_dict(state)
        self.search_space.apply_latency_container(self._latency(resolution))
        self.search_space.sample(architecture)

    # ----------------------------------------------------------------------- golden section
    def _next_resolution(self, low: int, high: int) -> int | None:
        return next_resolution(self.metrics, low, high, self.resolution_tolerance)

    def _bracket(self, low: int, high: int) -> tuple[int, int]:
        return shrink_bracket(self.metrics, low, high, self.resolution_tolerance)

    # ------------------------------------------------------------------------------ latency
    def _sample_batch(self) -> torch.Tensor:
        if self._sample is None:
            item = next(iter(self.dataloader), None)
            if item is None:
                raise ValueError("ResolutionSearcherWithFixedLatencyIterator: the dataloader yields no batches")
            images = item[0] if isinstance(item, (tuple, list)) else item
            if not isinstance(images, torch.Tensor) or images.ndim != 4:
                raise ValueError("ResolutionSearcherWithFixedLatencyIterator: the dataloader's items must start with "
                                 "an N x C x H x W image batch")
            param = next(self.search_space.parameters(), None)
            self._sample = images.to(param.device) if param is not None else images
        return self._sample

    def _latency(self, resolution: int) -> SearchSpaceLatencyContainer:
        if resolution not in self._latencies:
            images = next(ConstantResolutionStrategy(resolution)([self._sample_batch()]))
            saved = self.search_space.get_latency_container() if self.search_space.latency_type is not None else None
            self._latencies[resolution] = initialize_latency(
                self.latency_type, self.search_space, (images,), **self.latency_kwargs
            )
            if saved is not None:
                self.search_space.apply_latency_container(saved)
        return self._latencies[resolution]

    def _feasible(self, resolution: int) -> bool:
        return min_latency(self._latency(resolution)) <= self.enot_optimizer.max_latency_value

    def _largest_feasible_resolution(self) -> int:
        """Largest resolution of the range at which some architecture meets the bound (bisection)."""
        low, high = self.min_resolution, self.max_resolution
        if not self._feasible(low):
            raise ValueError(
                f"no architecture meets max_latency_value={self.enot_optimizer.max_latency_value!r} even at "
                f"min_resolution={low}: the minimum latency there is {min_latency(self._latency(low))!r}"
            )
        if self._feasible(high):
            return high
        while high - low > 1:  # feasible(low), not feasible(high)
            middle = (low + high) // 2
            if self._feasible(middle):
                low = middle
            else:
                high = middle
        return low


def _probes(low: int, high: int) -> tuple[int, int] | None:
    """The two golden-section points strictly inside ``[low, high]``, or ``None`` when the bracket is
    too narrow for two distinct interior points."""
    step = round(_INV_PHI * (high - low))
    left, right = high - step, low + step
    return (left, right) if low < left < right < high else None


def next_resolution(metrics: Mapping[int, float], low: int, high: int, tolerance: int) -> int | None:
    """Golden-section search over integers: the next untried resolution of ``[low, high]``, or ``None``
    when the search is over (the bracket is at most ``tolerance`` wide, or every candidate is tried).

    ``metrics`` maps the resolutions tried to their metric (higher is better).  A bracket too narrow for
    two interior probes (at most 3 wide) but wider than ``tolerance`` is finished by trying each of its
    resolutions.
    """
    probes = _probes(low, high)
    if not metrics:
        return probes[0] if probes is not None else (low + high) // 2
    if high - low <= tolerance:
        return None
    candidates = probes if probes is not None else range(low, high + 1)
    return next((r for r in candidates if r not in metrics), None)


def shrink_bracket(metrics: Mapping[int, float], low: int, high: int, tolerance: int) -> tuple[int, int]:
    """Shrinks ``[low, high]`` while both golden-section probes have metrics: the side beyond the worse
    probe goes (for a unimodal metric the best resolution stays inside)."""
    while high - low > tolerance:
        probes = _probes(low, high)
        if probes is None or probes[0] not in metrics or probes[1] not in metrics:
            break
        left, right = probes
        if metrics[left] >= metrics[right]:
            high = right
        else:
            low = left
    return low, high


def _copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return optree.tree_map(lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else copy.deepcopy(x),
                           dict(state))
