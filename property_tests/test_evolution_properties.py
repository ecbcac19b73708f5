"""Properties of the evolutionary search over latency tables hypothesis generates: the bound always holds."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef

continuous = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)
on_grid = st.integers(0, 30).map(lambda i: i / 10)  # multiples of 0.1: float sums tie with bounds


@st.composite
def problems(draw):
    counts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    values = draw(st.sampled_from([continuous, on_grid]))
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    lat = [draw(st.lists(values, min_size=n, max_size=n)) for n in counts]
    table = ef.latency_table(draw(values), lat, dtype=dtype)
    every = [list(a) for a in itertools.product(*(range(n) for n in counts))]
    lo = float(ef.min_latency(ef.latency_table(table.constant, [o.double() for o in table.operations])))
    # Bounds at an architecture's latency (ties), in between, and at the minimum.
    tie = float(ef.architecture_latency(draw(st.sampled_from(every)), table).double())
    frac = draw(st.floats(min_value=0.0, max_value=1.0))
    bound = draw(st.sampled_from([lo, max(tie, lo), lo + (max(tie, lo) - lo) * frac]))
    # A deterministic score per architecture (not additive: the evolution must not rely on it).
    scores = {tuple(a): draw(st.floats(-5, 5, allow_nan=False)) for a in every}
    return counts, table, bound, scores


def _latency64(architecture, table) -> float:
    # The float64 left-to-right sum, the one feasibility test of the package.
    total = torch.tensor(float(table.constant), dtype=torch.float64)
    for ops, k in zip(table.operations, architecture):
        total = total + ops[k].double()
    return float(total)


@settings(max_examples=80, deadline=None)
@given(problems(), st.integers(0, 2**31), st.integers(2, 5), st.integers(0, 3))
def test_every_architecture_scored_or_returned_respects_the_bound(problem, seed, population, steps):
    counts, table, bound, scores = problem
    calls = []

    def evaluate(architecture):
        calls.append(tuple(architecture))
        return scores[tuple(architecture)]

    config = ef.EvolutionConfig(population_size=population, novelty_tries=3)
    result = ef.evolution_search(ef.random.key(seed), evaluate, steps, table=table, max_latency=bound, config=config)
    for architecture in calls + [tuple(r) for r in result.state.population.tolist()] + [tuple(result.architecture)]:
        assert _latency64(architecture, table) <= bound, (architecture, bound)
    # evaluate ran once per distinct architecture, and the result is the best of those it scored.
    assert len(calls) == len(set(calls)) == result.state.evaluated.shape[0]
    assert result.score == max(scores[a] for a in calls)
    assert scores[tuple(result.architecture)] == result.score
    # The best score so far never decreases.
    assert all(a <= b for a, b in zip(result.best_scores, result.best_scores[1:]))


@settings(max_examples=40, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_the_same_key_gives_the_same_search(problem, seed):
    counts, table, bound, scores = problem
    config = ef.EvolutionConfig(population_size=4, novelty_tries=2)

    def run():
        return ef.evolution_search(
            ef.random.key(seed), lambda a: scores[tuple(a)], 2, table=table, max_latency=bound, config=config
        ).state

    first, second = run(), run()
    for a, b in zip(first, second):
        assert torch.equal(a, b)
