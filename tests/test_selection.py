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


def test_selection_fills_the_budget_when_the_dearer_candidates_are_more_probable():
    # Every container prefers its dear candidate (5) to its cheap one (1); the bound 11 fits two
    # dear ones and a cheap one, exactly on the bound (a tie of the float sum): the optimum.
    logits = [torch.tensor([0.0, 1.0], dtype=torch.float64)] * 3
    table = ef.latency_table(0.0, [[1.0, 5.0]] * 3)
    arch = ef.select_architecture(logits, table, 11.0)
    assert sorted(arch) == [0, 1, 1] and float(ef.architecture_latency(arch, table)) == 11.0
    # Just below the bound only one dear candidate fits.
    assert sorted(ef.select_architecture(logits, table, 10.999)) == [0, 0, 1]
    # Scores replace the log-probabilities: the cheap candidates win when scored higher.
    assert ef.select_architecture(logits, table, 11.0, scores=[torch.tensor([1.0, 0.0])] * 3) == [0, 0, 0]


def test_issue_example_on_a_tie_of_float_sums():
    # 0.0 + 0.1 + 0.2 + 0.3 is 0.6000000000000001 > 0.6: the dearest architecture is infeasible, and
    # selection used to raise AssertionError here (the LP-rounding lower bound was -inf, the guess NaN).
    table = ef.latency_table(0.0, [[0.0, 0.1], [0.0, 0.2], [0.0, 0.3]])
    logits = [torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0]), torch.tensor([0.0, 3.0])]
    assert float(ef.architecture_latency([1, 1, 1], table)) > 0.6
    assert ef.select_architecture(logits, table, 0.6) == _brute(logits, table, 0.6)[1] == [0, 1, 1]


def test_infeasible_problems_are_value_errors_that_say_which():
    table = ef.latency_table(0.0, [[1.0, 3.0], [1.0, 3.0]])
    blocked = [torch.tensor([-math.inf, 0.0]), torch.tensor([0.0, 1.0])]  # the cheap candidate of container 0 is -inf
    with pytest.raises(ValueError, match="no architecture within the latency bound 3.0 has a finite log-probability"):
        ef.select_architecture(blocked, table, 3.0)
    # One error for every entry point (the sampler works in log space: only -inf has probability 0).
    with pytest.raises(ValueError, match="no architecture within the latency bound 3.0 has a finite log-probability"):
        ef.sample_feasible_architecture(ef.random.key(0), blocked, table, 3.0)
    assert ef.select_architecture(blocked, table, 4.0) == [1, 0]
    with pytest.raises(ValueError, match=r"below the minimum latency of the search space \(2\.0\)"):
        ef.select_architecture(blocked, table, 1.5)


def test_bound_below_minimum_states_the_minimum():
    table = ef.latency_table(1.0, [[2.0, 3.0], [4.0, 1.0]])
    with pytest.raises(ValueError, match=r"minimum latency of the search space \(4\.0\)"):
        ef.select_architecture([torch.zeros(2), torch.zeros(2)], table, 3.5)
    with pytest.raises(ValueError, match="4.0"):
        ef.sample_feasible_architecture(ef.random.key(0), [torch.zeros(2), torch.zeros(2)], table, 3.99)
    assert ef.select_architecture([torch.zeros(2), torch.zeros(2)], table, 4.0) == [0, 1]


def _integer_knapsack(values, costs, budget):
    """Best total value with integer costs summing to at most ``budget`` (an independent exact DP)."""
    best = [0.0] + [-math.inf] * budget  # best[b]: best value of the containers so far at total cost b
    for vs, cs in zip(values, costs):
        new = [-math.inf] * (budget + 1)
        for b, v0 in enumerate(best):
            if v0 == -math.inf:
                continue
            for v, c in zip(vs, cs):
                if b + c <= budget:
                    new[b + c] = max(new[b + c], v0 + v)
        best = new
    return max(best)


@pytest.mark.parametrize("seed", range(4))
def test_selection_20x10_is_exact_against_an_integer_knapsack(seed):
    # 10^20 architectures: brute force is out of reach; integer latencies allow an exact textbook
    # DP over budgets, which shares no code with the Pareto programme.  A greedy or a local
    # optimum (no single swap improves) fails this.
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(10, generator=g, dtype=torch.float64) * 2 for _ in range(20)]
    costs = [torch.randint(0, 12, (10,), generator=g).tolist() for _ in range(20)]
    table = ef.latency_table(0.0, costs)
    budget = int(ef.min_latency(table)) + 40 + 10 * seed
    arch = ef.select_architecture(logits, table, float(budget))
    assert float(ef.architecture_latency(arch, table)) <= budget
    values = [torch.log_softmax(l, 0).tolist() for l in logits]
    assert ef.architecture_log_probability(arch, logits) == pytest.approx(_integer_knapsack(values, costs, budget), abs=1e-9)


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


@pytest.mark.parametrize("bound", [0.0, 4.9e-324, 1e-320])
def test_sampling_with_subnormal_latencies_stays_exact(bound):
    # Hypothesis found a table holding the smallest subnormal float with a bound of 0: the grid's step
    # underflowed to 0 (ZeroDivisionError).  Every draw must still be feasible and follow p restricted.
    table = ef.LatencyTable(0.0, [torch.tensor([0.0, 4.9e-324], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)])
    logits = [torch.zeros(2), torch.zeros(2)]
    draws = [tuple(ef.sample_feasible_architecture(ef.random.key(i), logits, table, bound)) for i in range(300)]
    feasible = {a for a in [(0, 0), (0, 1), (1, 0), (1, 1)] if float(ef.architecture_latency(list(a), table)) <= bound}
    assert set(draws) <= feasible
    assert set(draws) == feasible  # both feasible architectures are equally likely: 300 draws see each


def test_sampling_when_rounding_absorbs_an_excess():
    # Hypothesis: constant 1.0, candidate latencies (2.3e-255, 0.0), bound 1.0, the 0.0 candidate at
    # probability 0.  1.0 + 2.3e-255 rounds to 1.0, so candidate 0 is feasible; a grid finer than the
    # sums' ulp counted its excess as units and left no mass (AssertionError).
    table = ef.LatencyTable(1.0, (torch.tensor([2.2961e-255, 0.0], dtype=torch.float64),))
    logits = [torch.tensor([0.0, -math.inf], dtype=torch.float64)]
    assert ef.sample_feasible_architecture(ef.random.key(0), logits, table, 1.0) == [0]
