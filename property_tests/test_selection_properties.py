"""Properties of latency-bounded selection and sampling, over tables hypothesis generates.

Tables come on the grids where float sums tie and round (multiples of 0.1 and 0.01, integers) and
continuous, in float32 and float64; bounds are often *equal* to some architecture's latency (the
tie cases), and logits may be ``-inf``.  Brute force over every architecture, with the one latency
sum of the package (``ef.architecture_latency``), is the reference.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef
from enot.functional import _selection
from enot.functional._selection import feasible_alternatives

GRIDS = ("0.1", "0.01", "int", "continuous")


@st.composite
def latencies(draw, n: int, grid: str) -> list[float]:
    if grid == "continuous":
        return draw(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=n, max_size=n))
    top, unit = {"0.1": (30, 0.1), "0.01": (300, 0.01), "int": (6, 1.0)}[grid]
    return [k * unit for k in draw(st.lists(st.integers(0, top), min_size=n, max_size=n))]


@st.composite
def problems(draw, *, neg_inf: bool = True):
    grid = draw(st.sampled_from(GRIDS))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    counts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    table = ef.latency_table(draw(latencies(1, grid))[0], [draw(latencies(n, grid)) for n in counts], dtype=dtype)
    logit = st.floats(-8.0, 8.0, allow_nan=False)
    if neg_inf:
        logit = st.one_of(logit, logit, logit, st.just(-math.inf))
    logits = []
    for n in counts:
        values = draw(st.lists(logit, min_size=n, max_size=n))
        if all(v == -math.inf for v in values):
            values[draw(st.integers(0, n - 1))] = 0.0  # softmax of all -inf is NaN: not a distribution
        logits.append(torch.tensor(values, dtype=dtype))
    all_latencies = sorted({float(ef.architecture_latency(list(a), table)) for a in _architectures(counts)})
    lo, hi = all_latencies[0], all_latencies[-1]
    frac = draw(st.floats(0.0, 1.0))
    bound = draw(st.sampled_from([lo, hi, lo + (hi - lo) * frac, draw(st.sampled_from(all_latencies))]))
    return logits, table, bound


def _architectures(counts):
    return itertools.product(*(range(n) for n in counts))


def _feasible(arch, table, bound) -> bool:
    return float(ef.architecture_latency(list(arch), table)) <= bound


def _brute(logits, table, bound):
    """Best finite log-probability within the bound (None if none is finite)."""
    scores = [
        ef.architecture_log_probability(a, logits)
        for a in _architectures([l.numel() for l in logits])
        if _feasible(a, table, bound)
    ]
    finite = [s for s in scores if s > -math.inf]
    return max(finite) if finite else None


@settings(max_examples=400, deadline=None)
@given(problems())
def test_selection_equals_brute_force_or_says_none_is_finite(problem):
    logits, table, bound = problem
    best = _brute(logits, table, bound)
    if best is None:
        with pytest.raises(ValueError, match="no architecture within the latency bound"):
            ef.select_architecture(logits, table, bound)
        return
    arch = ef.select_architecture(logits, table, bound)
    assert _feasible(arch, table, bound)
    assert math.isclose(ef.architecture_log_probability(arch, logits), best, rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_sampled_architectures_are_feasible_with_probability_or_the_problem_is_refused(problem, seed):
    logits, table, bound = problem
    if _brute(logits, table, bound) is None:
        with pytest.raises(ValueError, match="no architecture within the latency bound"):
            ef.sample_feasible_architecture(ef.random.key(seed), logits, table, bound)
        return
    for k in ef.random.split(ef.random.key(seed), 5):
        arch = ef.sample_feasible_architecture(k, logits, table, bound)
        assert _feasible(arch, table, bound)
        assert ef.architecture_log_probability(arch, logits) > -math.inf
        masks = feasible_alternatives(arch, table, bound)
        for c, mask in enumerate(masks):
            for j in range(mask.numel()):
                swapped = list(arch)
                swapped[c] = j
                assert bool(mask[j]) == _feasible(swapped, table, bound)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_exact_fallback_draws_only_feasible_architectures(problem, seed):
    logits, table, bound = problem
    if _brute(logits, table, bound) is None:
        return
    rounds = _selection._GRID_ROUNDS
    _selection._GRID_ROUNDS = 0  # every draw from the exact programme over partial sums
    try:
        for k in ef.random.split(ef.random.key(seed), 3):
            arch = ef.sample_feasible_architecture(k, logits, table, bound)
            assert _feasible(arch, table, bound) and ef.architecture_log_probability(arch, logits) > -math.inf
    finally:
        _selection._GRID_ROUNDS = rounds


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_search_samples_respect_the_bound(problem, seed):
    logits, table, bound = problem
    if _brute(logits, table, bound) is None:
        return
    for estimator in ("two_path", "first_order"):
        _, sample = ef.next_search_sample(ef.random.key(seed), logits, table, bound, estimator=estimator)
        assert _feasible(sample.architecture, table, bound)
        if estimator == "two_path":
            assert _feasible(sample.alternatives, table, bound)
        else:
            for c, j in enumerate(sample.alternatives):
                swapped = list(sample.architecture)
                swapped[c] = j
                assert _feasible(swapped, table, bound)


@pytest.mark.parametrize("fallback", [False, True])
def test_sampling_on_a_tie_follows_the_restricted_distribution(fallback, monkeypatch):
    # 0.1 + 0.2 + 0.3 rounds to 0.6000000000000001 > 0.6 while 0.3 + 0.2 + 0.1 does not: the grid
    # admits the infeasible sum, the draws must still follow p restricted to the feasible set.
    table = ef.latency_table(0.0, [[0.0, 0.1], [0.0, 0.2], [0.0, 0.3]])
    logits = [torch.tensor([0.0, 3.0], dtype=torch.float64)] * 3
    if fallback:
        monkeypatch.setattr(_selection, "_GRID_ROUNDS", 0)
    archs = [a for a in _architectures([2, 2, 2]) if _feasible(a, table, 0.6)]
    assert (1, 1, 1) not in archs and len(archs) == 7
    weights = torch.tensor([math.exp(ef.architecture_log_probability(a, logits)) for a in archs])
    expected = weights / weights.sum()
    n = 3000
    counts = Counter(tuple(ef.sample_feasible_architecture(k, logits, table, 0.6)) for k in ef.random.split(ef.random.key(1), n))
    assert set(counts) <= set(archs)
    observed = torch.tensor([counts[a] / n for a in archs], dtype=torch.float64)
    se = (expected * (1 - expected) / n).sqrt()
    assert bool(((observed - expected).abs() <= 4.5 * se + 1e-3).all()), (observed, expected)
