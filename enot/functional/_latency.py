"""Pure latency maths over a :class:`LatencyTable`: one architecture, expectations, statistics.

The latency model is additive: an architecture ``a`` (one candidate index per container) costs
``constant + sum_c operations[c][a[c]]``.  Everything here is a pure function of the table (and of
the logits or the architecture); nothing is mutated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from enot.functional import _layout
from enot.functional._validate import check_bound_value, check_int

__all__ = [
    "LatencyDistribution",
    "LatencyTable",
    "architecture_latency",
    "check_latency_bound",
    "enumerate_latencies",
    "expected_latency",
    "latency_distribution",
    "latency_penalty",
    "latency_sum",
    "latency_table",
    "max_latency",
    "max_latency_architecture",
    "mean_latency",
    "median_latency",
    "min_latency",
    "min_latency_architecture",
]

# Spaces with at most this many architectures get an exact median by enumeration.
MAX_ENUMERATE = 1 << 20
# Default number of grid steps spanned by the latency range in :func:`latency_distribution`.
DEFAULT_BINS = 1 << 16


class LatencyTable(NamedTuple):
    """The latency of every candidate of every container, plus the part outside the containers.

    Attributes:
        constant: Latency of everything outside the containers.
        operations: One 1-D tensor per container (architecture order), entry ``k`` the latency of
            candidate ``k``.
    """

    constant: float
    operations: tuple[torch.Tensor, ...]


class LatencyDistribution(NamedTuple):
    """Distribution of the latency of a uniformly drawn architecture, on a grid.

    Attributes:
        values: 1-D float64 tensor of grid latencies ``start + step * i`` (ascending).
        counts: 1-D tensor (``int64`` when exact, else ``float64`` probabilities) with the number
            (or share) of architectures whose rounded latency is ``values[i]``.
        step: Grid step.
        error_bound: No architecture's rounded latency is further than this from its true
            latency, so any order statistic (the median) read from the grid is within it too.
    """

    values: torch.Tensor
    counts: torch.Tensor
    step: float
    error_bound: float


def latency_table(
    constant: float,
    operations: Sequence[Sequence[float] | torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> LatencyTable:
    """Builds and validates a :class:`LatencyTable`.

    Args:
        constant: Latency outside the containers.
        operations: One sequence of candidate latencies per container.
        dtype: Floating dtype of the operation tensors.
        device: Device of the operation tensors.

    Raises:
        ValueError: If a value is negative, NaN or infinite, or a container has no candidate.
    """
    constant = float(constant)
    if not math.isfinite(constant) or constant < 0:
        raise ValueError(f"constant latency is {constant!r}; it must be finite and >= 0")
    tensors = []
    for c, values in enumerate(operations):
        tensor = torch.as_tensor(values, dtype=dtype, device=device).detach().reshape(-1)
        if tensor.numel() == 0:
            raise ValueError(f"latencies of container {c} are empty; give one value per candidate")
        bad = ~torch.isfinite(tensor) | (tensor < 0)
        if bool(bad.any()):
            k = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"latency of container {c}, candidate {k} is {float(tensor[k])!r}; it must be finite and >= 0"
            )
        tensors.append(tensor)
    if not tensors:
        raise ValueError("a latency table needs at least one container")
    return LatencyTable(constant, tuple(tensors))


def latency_sum(constant: float, terms: Iterable[float]) -> float:
    """``constant + terms[0] + terms[1] + ...`` in float64, left to right.

    The one latency sum of the package: :func:`architecture_latency`, the feasibility masks,
    selection and constrained sampling all add in this order and precision, so an architecture is
    feasible under a bound for all of them or for none (float32 tables are widened exactly first).
    """
    total = np.float64(constant)
    for term in terms:
        total = total + np.float64(term)
    return float(total)


def float64_operations(table: LatencyTable) -> list[np.ndarray]:
    """The table's candidate latencies as float64 numpy arrays (exact widening of float32)."""
    return [ops.detach().to("cpu", torch.float64).numpy().reshape(-1) for ops in table.operations]


def architecture_latency(architecture: Sequence[int] | torch.Tensor, table: LatencyTable) -> torch.Tensor:
    """Latency of one architecture: ``constant + sum_c operations[c][architecture[c]]``.

    Summed by :func:`latency_sum` (float64, left to right), the sum every feasibility test uses.

    Args:
        architecture: One candidate index per container (``list[int]`` or a 1-D integer tensor).
        table: The latency table.

    Returns:
        A 0-d float64 tensor on the table's device.

    Raises:
        TypeError, ValueError: If the architecture does not fit the table (wrong length, an index out of
            range or not an integer: ``enot.functional.validate_architecture``; negative indices do
            not wrap).
    """
    architecture = _layout.validate_architecture(tuple(len(ops) for ops in table.operations), architecture)
    return _accumulate(table, [ops[index] for ops, index in zip(table.operations, architecture)])


def expected_latency(logits: Sequence[torch.Tensor], table: LatencyTable) -> torch.Tensor:
    """Expected latency when container ``c`` picks candidate ``k`` with probability ``softmax(logits[c])[k]``.

    ``E = constant + sum_c softmax(logits[c]) . operations[c]``; differentiable with respect to the
    logits.

    Args:
        logits: One 1-D tensor per container (architecture order).
        table: The latency table (cast to the logits' dtype and device).

    Returns:
        A 0-d tensor in the logits' dtype.

    Raises:
        ValueError: If the number of containers or of candidates differs from the table's.
    """
    logits = tuple(logits)
    if len(logits) != len(table.operations):
        raise ValueError(
            f"got logits for {len(logits)} containers; the latency table has {len(table.operations)}"
        )
    total = None
    for c, (logit, ops) in enumerate(zip(logits, table.operations)):
        if logit.shape != ops.shape:
            raise ValueError(
                f"logits of container {c} have shape {tuple(logit.shape)}; its latencies have shape {tuple(ops.shape)}"
            )
        term = torch.dot(torch.softmax(logit, dim=0), ops.to(dtype=logit.dtype, device=logit.device))
        total = term if total is None else total + term
    return total + table.constant


def latency_penalty(
    logits: Sequence[torch.Tensor], table: LatencyTable, max_latency: float, weight: float = 1.0
) -> torch.Tensor:
    """The fixed-latency search's penalty: ``weight * relu(E[latency] - max_latency) / scale``.

    ``E[latency]`` is :func:`expected_latency` (differentiable in the logits); ``scale`` is
    ``max_latency`` when positive (the penalty is then ``weight * relu(E / max_latency - 1)``, the
    relative excess), else the table's largest latency (1 when that is 0 too), so a bound of 0 gives
    a penalty of the order of ``weight``, not ``weight / 1e-12``.  Zero while the expected latency is
    within the bound: it only pulls back a distribution that drifted above it.

    ``max_latency`` ``inf`` is no bound: the penalty is 0 (still a function of the logits).

    Returns:
        A 0-d tensor in the logits' dtype.

    Raises:
        ValueError: If ``max_latency`` is negative or NaN, or ``weight`` is negative.
        TypeError: If ``max_latency`` is not a real number or a one-element real tensor.
    """
    max_latency = check_bound_value(max_latency, "max_latency")
    if max_latency < 0:
        raise ValueError(f"max_latency must be >= 0 (or inf: no bound), got {max_latency!r}")
    if not weight >= 0:
        raise ValueError(f"the penalty weight must be >= 0, got {weight!r}")
    expectation = expected_latency(logits, table)
    if max_latency == math.inf:
        return weight * torch.relu(expectation * 0.0 - 1.0)
    if max_latency > 0:
        return weight * torch.relu(expectation / max_latency - 1.0)
    scale = float(max_latency_fn(table)) or 1.0
    return weight * torch.relu(expectation - max_latency) / scale


def _accumulate(table: LatencyTable, terms: Sequence[torch.Tensor]) -> torch.Tensor:
    # One sum (latency_sum), so that min_latency(table) == architecture_latency(min_latency_architecture(table),
    # table) bit for bit and every feasibility test agrees.
    value = latency_sum(table.constant, [float(t) for t in terms])
    return torch.tensor(value, dtype=torch.float64, device=table.operations[0].device)


def check_latency_bound(
    value: Any, table: LatencyTable | None = None, *, name: str = "max_latency", where: str = ""
) -> float:
    """A latency bound as a float, refused when no architecture of ``table`` meets it.

    The one check of a bound in ``enot``: a real number, a numpy number or a one-element real
    tensor is read as its float; ``inf`` means *no bound* (every architecture is feasible).  With a
    table, a bound below :func:`min_latency` is refused, with the minimum in the message.

    Args:
        value: The bound.
        table: The latency table it bounds (``None``: the type check only).
        name: The argument's name in messages (``max_latency_value`` in the optimizers).
        where: Prefix of messages (``"EvolutionSearch: "``).

    Returns:
        ``float(value)``.

    Raises:
        TypeError: If ``value`` is not a real number or a one-element real tensor.
        ValueError: If it is NaN, or below the minimum latency of ``table``.
    """
    bound = check_bound_value(value, name, where=where)
    if table is not None:
        lowest = float(min_latency(table))
        if lowest > bound:
            raise ValueError(
                f"{where}{name}={bound!r} is below the minimum latency of the search space ({lowest!r}); no "
                f"architecture meets it (use a bound of at least {lowest!r}, or inf for no bound)"
            )
    return bound


def min_latency(table: LatencyTable) -> torch.Tensor:
    """Smallest latency over all architectures (0-d float64 tensor): the latency of
    :func:`min_latency_architecture`, summed by :func:`latency_sum`."""
    return _accumulate(table, [ops.min() for ops in table.operations])


def max_latency(table: LatencyTable) -> torch.Tensor:
    """Largest latency over all architectures (0-d float64 tensor)."""
    return _accumulate(table, [ops.max() for ops in table.operations])


def mean_latency(table: LatencyTable) -> torch.Tensor:
    """Mean latency over all architectures, each counted once (0-d float64 tensor)."""
    return _accumulate(table, [ops.mean() for ops in table.operations])


def min_latency_architecture(table: LatencyTable) -> list[int]:
    """An architecture of smallest latency (lowest index on ties)."""
    return [int(torch.argmin(ops)) for ops in table.operations]


def max_latency_architecture(table: LatencyTable) -> list[int]:
    """An architecture of largest latency (lowest index on ties)."""
    return [int(torch.argmax(ops)) for ops in table.operations]


def _n_architectures(table: LatencyTable) -> int:
    return math.prod(ops.numel() for ops in table.operations)


def enumerate_latencies(table: LatencyTable, *, max_architectures: int = MAX_ENUMERATE) -> torch.Tensor:
    """Latencies of all architectures, in lexicographic architecture order (last container fastest).

    Returns:
        1-D float64 tensor of ``prod(n_choices)`` values.

    Raises:
        ValueError: If the space has more than ``max_architectures`` architectures.
    """
    n = _n_architectures(table)
    if n > max_architectures:
        raise ValueError(
            f"the search space has {n} architectures, more than max_architectures={max_architectures}; "
            "use latency_distribution for large spaces"
        )
    total = torch.full((1,), float(table.constant), dtype=torch.float64)  # the order of latency_sum
    for ops in table.operations:
        total = (total.reshape(-1, 1) + ops.detach().to("cpu", torch.float64).reshape(1, -1)).reshape(-1)
    return total


def latency_distribution(table: LatencyTable, *, bins: int = DEFAULT_BINS) -> LatencyDistribution:
    """Exact distribution, over all architectures, of the latency rounded to a grid.

    Each candidate latency is rounded to the grid ``min_c + step * i`` of its container, with
    ``step = (max_latency - min_latency) / bins``; the distribution of the sum of rounded values is
    then the exact convolution of the containers' histograms.  Rounding moves each container's
    term by at most ``step / 2``, so every architecture's rounded latency is within
    ``error_bound = step / 2 * (number of containers whose candidates differ)`` of its true latency,
    and so is every order statistic (e.g. the median).  The error bound is ``<= C * span / (2 * bins)``.

    Counts are exact ``int64`` when the space has fewer than ``2**62`` architectures, else
    ``float64`` probabilities.  Cost: ``O(bins * sum(n_choices))``.

    Args:
        table: The latency table.
        bins: Number of grid steps spanning ``[min_latency, max_latency]`` (positive int).

    Raises:
        ValueError: If ``bins`` is not a positive int.
    """
    check_int(bins, "bins", minimum=1)
    ops = [o.detach().to("cpu", torch.float64) for o in table.operations]
    lows = [float(o.min()) for o in ops]
    span = sum(float(o.max()) - low for o, low in zip(ops, lows))
    start = table.constant + sum(lows)
    varying = sum(1 for o, low in zip(ops, lows) if float(o.max()) > low)
    if span == 0.0:
        count_dtype = torch.int64 if _n_architectures(table) < 2**62 else torch.float64
        count = _n_architectures(table) if count_dtype == torch.int64 else 1.0
        return LatencyDistribution(
            torch.tensor([start], dtype=torch.float64), torch.tensor([count], dtype=count_dtype), 0.0, 0.0
        )
    step = span / bins
    exact = _n_architectures(table) < 2**62
    count_dtype = torch.int64 if exact else torch.float64
    hist = torch.ones(1, dtype=count_dtype)
    for o, low in zip(ops, lows):
        offsets = torch.round((o - low) / span * bins).clamp(0, bins).to(torch.int64).tolist()
        new = torch.zeros(hist.numel() + max(offsets), dtype=count_dtype)
        for offset in offsets:
            new[offset : offset + hist.numel()] += hist if exact else hist / len(offsets)
        hist = new
    values = start + step * torch.arange(hist.numel(), dtype=torch.float64)
    # A step that underflows to 0 (subnormal span) still has every value within the span.
    error_bound = step / 2 * varying if step > 0 else span
    return LatencyDistribution(values, hist, step, error_bound)


def _median_from_distribution(dist: LatencyDistribution, n: int) -> float:
    cumulative = torch.cumsum(dist.counts, dim=0)
    if dist.counts.dtype == torch.int64:
        lower_rank, upper_rank = (n - 1) // 2 + 1, n // 2 + 1  # 1-based ranks of the middle items
        lower = int(torch.searchsorted(cumulative, torch.tensor(lower_rank)))
        upper = int(torch.searchsorted(cumulative, torch.tensor(upper_rank)))
    else:  # probabilities of a huge space: the two middle ranks share one grid value up to rounding
        lower = upper = int(torch.searchsorted(cumulative, torch.tensor(0.5, dtype=torch.float64)))
    lower, upper = min(lower, len(dist.values) - 1), min(upper, len(dist.values) - 1)
    return float(dist.values[lower] + dist.values[upper]) / 2


def median_latency(
    table: LatencyTable, *, max_architectures: int = MAX_ENUMERATE, bins: int = DEFAULT_BINS
) -> torch.Tensor:
    """Median latency over all architectures, each counted once (mean of the two middle values).

    Exact (enumeration) when the space has at most ``max_architectures`` architectures; otherwise
    read from :func:`latency_distribution` with ``bins`` steps, within its ``error_bound``
    (``<= n_containers * (max_latency - min_latency) / (2 * bins)``) of the exact median.

    Returns:
        A 0-d float64 tensor.
    """
    n = _n_architectures(table)
    if n <= max_architectures:
        values = torch.sort(enumerate_latencies(table, max_architectures=max_architectures)).values
        return (values[(n - 1) // 2] + values[n // 2]) / 2
    return torch.tensor(_median_from_distribution(latency_distribution(table, bins=bins), n), dtype=torch.float64)


max_latency_fn = max_latency  # latency_penalty's argument shadows the name
