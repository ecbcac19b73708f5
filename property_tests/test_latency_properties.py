"""Properties of the latency maths: statistics equal brute force on every small table."""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef
from enot.latency import SearchSpaceLatencyContainer, median_latency

latency = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)
operations = st.lists(st.lists(latency, min_size=1, max_size=4), min_size=1, max_size=5)


def brute_force(constant: float, ops: list[list[float]]) -> list[float]:
    return [constant + sum(ops[c][k] for c, k in enumerate(arch)) for arch in itertools.product(*map(range, map(len, ops)))]


@settings(max_examples=150, deadline=None)
@given(latency, operations)
def test_statistics_equal_brute_force(constant: float, ops: list[list[float]]) -> None:
    table = ef.latency_table(constant, ops)
    values = brute_force(constant, ops)
    scale = 1e-9 * (1 + max(values))
    assert math.isclose(float(ef.min_latency(table)), min(values), abs_tol=scale)
    assert math.isclose(float(ef.max_latency(table)), max(values), abs_tol=scale)
    assert math.isclose(float(ef.mean_latency(table)), statistics.fmean(values), abs_tol=scale)
    assert math.isclose(float(ef.median_latency(table)), statistics.median(values), abs_tol=scale)
    # Bit for bit: a bound equal to min_latency admits the fastest architecture.
    assert float(ef.architecture_latency(ef.min_latency_architecture(table), table)) == float(ef.min_latency(table))
    assert float(ef.architecture_latency(ef.max_latency_architecture(table), table)) == float(ef.max_latency(table))
    enumerated = ef.enumerate_latencies(table).tolist()
    assert len(enumerated) == len(values)
    assert all(math.isclose(a, b, abs_tol=scale) for a, b in zip(enumerated, values))


@settings(max_examples=150, deadline=None)
@given(latency, operations, st.integers(min_value=1, max_value=5000))
def test_grid_median_within_error_bound(constant: float, ops: list[list[float]], bins: int) -> None:
    table = ef.latency_table(constant, ops)
    values = brute_force(constant, ops)
    dist = ef.latency_distribution(table, bins=bins)
    span = float(ef.max_latency(table) - ef.min_latency(table))
    assert dist.error_bound <= len(ops) * span / (2 * bins) * (1 + 1e-9) + 1e-12
    assert int(dist.counts.sum()) == len(values)
    assert bool((dist.counts >= 0).all())
    grid_median = float(ef.median_latency(table, max_architectures=0, bins=bins))
    assert abs(grid_median - statistics.median(values)) <= dist.error_bound + 1e-9 * (1 + max(values))


@settings(max_examples=100, deadline=None)
@given(latency, operations, st.randoms(use_true_random=False))
def test_expected_latency_equals_brute_force(constant: float, ops: list[list[float]], rng) -> None:  # noqa: ANN001
    table = ef.latency_table(constant, ops)
    logits = tuple(torch.tensor([rng.uniform(-4, 4) for _ in o], dtype=torch.float64) for o in ops)
    probs = [torch.softmax(l, 0).tolist() for l in logits]
    expected = 0.0
    for arch in itertools.product(*map(range, map(len, ops))):
        expected += math.prod(probs[c][k] for c, k in enumerate(arch)) * (constant + sum(ops[c][k] for c, k in enumerate(arch)))
    value = float(ef.expected_latency(logits, table))
    scale = 1e-9 * (1 + float(ef.max_latency(table)))
    assert math.isclose(value, expected, abs_tol=scale)
    assert float(ef.min_latency(table)) - scale <= value <= float(ef.max_latency(table)) + scale


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.0, allow_infinity=False), st.lists(st.lists(st.floats(min_value=0.0, allow_infinity=False), min_size=1, max_size=4), min_size=1, max_size=4))
def test_save_load_round_trip_is_exact(constant: float, ops: list[list[float]]) -> None:
    container = SearchSpaceLatencyContainer("time", constant, ops, metadata={"batch_size": 3})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "latency.json"
        container.save_to_file(path)
        loaded = SearchSpaceLatencyContainer.load_from_file(path, latency_type="time")
    assert loaded == container
    assert loaded.constant_latency == constant and loaded.operations_latencies == ops


@settings(max_examples=60, deadline=None)
@given(operations)
def test_median_of_container_equals_functional(ops: list[list[float]]) -> None:
    container = SearchSpaceLatencyContainer("mmac", 1.0, ops)
    assert median_latency(container) == float(ef.median_latency(container.table()))
