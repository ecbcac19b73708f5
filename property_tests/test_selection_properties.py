"""Properties of latency-bounded selection and sampling, over tables hypothesis generates."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef
from enot.functional._selection import feasible_alternatives

finite = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)
logit = st.floats(min_value=-8.0, max_value=8.0, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw):
    counts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    lat = [draw(st.lists(finite, min_size=n, max_size=n)) for n in counts]
    logits = [torch.tensor(draw(st.lists(logit, min_size=n, max_size=n)), dtype=torch.float64) for n in counts]
    table = ef.latency_table(draw(finite), lat)
    lo, hi = float(ef.min_latency(table)), float(ef.max_latency(table))
    frac = draw(st.floats(min_value=0.0, max_value=1.0))
    bound = draw(st.sampled_from([lo, hi, lo + (hi - lo) * frac]))
    return logits, table, bound


def _feasible(arch, table, bound):
    return float(ef.architecture_latency(list(arch), table)) <= bound


@settings(max_examples=300, deadline=None)
@given(problems())
def test_selection_equals_brute_force_and_respects_the_bound(problem):
    logits, table, bound = problem
    arch = ef.select_architecture(logits, table, bound)
    assert _feasible(arch, table, bound)
    best = max(
        ef.architecture_log_probability(a, logits)
        for a in itertools.product(*(range(l.numel()) for l in logits))
        if _feasible(a, table, bound)
    )
    assert math.isclose(ef.architecture_log_probability(arch, logits), best, rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=150, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_sampled_architectures_never_exceed_the_bound(problem, seed):
    logits, table, bound = problem
    for k in ef.random.split(ef.random.key(seed), 5):
        arch = ef.sample_feasible_architecture(k, logits, table, bound)
        assert _feasible(arch, table, bound)
        masks = feasible_alternatives(arch, table, bound)
        for c, mask in enumerate(masks):
            for j in range(mask.numel()):
                swapped = list(arch)
                swapped[c] = j
                assert bool(mask[j]) == _feasible(swapped, table, bound)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_search_samples_respect_the_bound(problem, seed):
    logits, table, bound = problem
    _, sample = ef.next_search_sample(ef.random.key(seed), logits, table, bound)
    assert _feasible(sample.architecture, table, bound)
    for c, j in enumerate(sample.alternatives):
        swapped = list(sample.architecture)
        swapped[c] = j
        assert _feasible(swapped, table, bound)
