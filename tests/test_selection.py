"""Exact latency-bounded selection and sampling restricted to the feasible set."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

import enot.functional as ef
from enot.functional._selection import feasible_alternatives


def _brute(logits, table, bound):
    best = None
    for a in itertools.product(*(range(l.numel()) for l in logits)):
        if float(ef.architecture_latency(list(a), table)) <= bound:
            score = ef.architecture_log_probability(a, logits)
            if best is None or score > best[0] + 1e-12:
                best = (score, list(a))
    return best


def _random_case(seed, n_containers=4, n_max=4):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, n_max + 1, (n_containers,), generator=g).tolist()
    logits = [torch.randn(n, generator=g, dtype=torch.float64) * 2 for n in counts]
    table = ef.latency_table(float(torch.rand((), generator=g)), [torch.rand(n, generator=g) * 5 for n in counts])
    lo, hi = float(ef.min_latency(table)), float(ef.max_latency(table))
    return logits, table, lo + (hi - lo) * float(torch.rand((), generator=g))


@pytest.mark.parametrize("seed", range(20))
def test_selection_equals_brute_force(seed):
    logits, table, bound = _random_case(seed)
    arch = ef.select_architecture(logits, table, bound)
    assert float(ef.architecture_latency(arch, table)) <= bound
    assert math.isclose(ef.architecture_log_probability(arch, logits), _brute(logits, table, bound)[0], abs_tol=1e-9)


def test_selection_fills_the_budget_instead_of_the_most_probable_cheap_path():
    # Every container slightly prefers its cheap candidate, but the bound allows two expensive ones:
    # the most probable feasible architecture is the unconstrained argmax (far below the bound)...
    logits = [torch.tensor([0.1, 0.0], dtype=torch.float64)] * 3
    table = ef.latency_table(0.0, [[1.0, 5.0]] * 3)
    assert ef.select_architecture(logits, table, 11.0) == [0, 0, 0]
    # ... while scores that favour the expensive candidates use the budget exactly.
    assert ef.select_architecture(logits, table, 11.0, scores=[torch.tensor([0.0, 1.0])] * 3) in ([0, 1, 1], [1, 0, 1], [1, 1, 0])


def test_bound_below_minimum_states_the_minimum():
    table = ef.latency_table(1.0, [[2.0, 3.0], [4.0, 1.0]])
    with pytest.raises(ValueError, match=r"minimum latency of the search space \(4\.0\)"):
        ef.select_architecture([torch.zeros(2), torch.zeros(2)], table, 3.5)
    with pytest.raises(ValueError, match="4.0"):
        ef.sample_feasible_architecture(ef.random.key(0), [torch.zeros(2), torch.zeros(2)], table, 3.99)
    assert ef.select_architecture([torch.zeros(2), torch.zeros(2)], table, 4.0) == [0, 1]


def test_selection_20x10_is_exact_against_a_relaxed_bound():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(10, generator=g) for _ in range(20)]
    table = ef.latency_table(0.0, [torch.rand(10, generator=g) for _ in range(20)])
    bound = float(ef.min_latency(table)) + 2.0
    arch = ef.select_architecture(logits, table, bound)
    assert float(ef.architecture_latency(arch, table)) <= bound
    # No single swap improves the score while staying feasible (a necessary condition of optimality).
    base = ef.architecture_log_probability(arch, logits)
    masks = feasible_alternatives(arch, table, bound)
    for c, mask in enumerate(masks):
        for k in mask.nonzero().flatten().tolist():
            other = list(arch)
            other[c] = k
            assert ef.architecture_log_probability(other, logits) <= base + 1e-9


def test_sampling_follows_the_restricted_distribution():
    logits = [torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 0.0])]
    table = ef.latency_table(0.0, [[1.0, 3.0, 2.0], [1.0, 2.5]])
    bound = 4.0
    archs = list(itertools.product(range(3), range(2)))
    feasible = [a for a in archs if float(ef.architecture_latency(list(a), table)) <= bound]
    weights = torch.tensor([math.exp(ef.architecture_log_probability(a, logits)) for a in feasible])
    expected = weights / weights.sum()
    n = 4000
    keys = ef.random.split(ef.random.key(3), n)
    counts = Counter(tuple(ef.sample_feasible_architecture(k, logits, table, bound)) for k in keys)
    assert set(counts) <= set(feasible)
    observed = torch.tensor([counts[a] / n for a in feasible])
    # Each frequency within 4.5 standard errors of its probability.
    se = (expected * (1 - expected) / n).sqrt()
    assert bool(((observed - expected).abs() <= 4.5 * se + 1e-3).all()), (observed, expected)


def test_sampling_is_deterministic_in_the_key():
    logits, table, bound = _random_case(5, 6, 5)
    a = ef.sample_feasible_architecture(ef.random.key(1), logits, table, bound)
    assert a == ef.sample_feasible_architecture(ef.random.key(1), logits, table, bound)


def test_feasible_alternatives():
    table = ef.latency_table(0.5, [[1.0, 3.0], [1.0, 2.0, 0.5]])
    masks = feasible_alternatives([0, 0], table, 3.0)
    assert masks[0].tolist() == [True, False] and masks[1].tolist() == [True, False, True]
    assert all(m.all() for m in feasible_alternatives([1, 1], table, None))
