"""Every ``enot.functional`` entry point that takes a latency bound agrees with brute force, or raises the same error.

Tables hold zeros, subnormal and ordinary latencies; logits have huge gaps (``-800``, ``-1e300``: their
probabilities underflow in ``exp``) and ``-inf``; bounds are 0, subnormal, ``inf``, NaN, below the
minimum, on a tie with an architecture's latency, and given as a float, a numpy float or a 0-d tensor.
The reference is brute force over every architecture with the package's one latency sum
(``ef.architecture_latency``) and log-probability (``ef.architecture_log_probability``):

- no feasible architecture (a bound below the minimum latency): every entry point raises the one
  ``ValueError`` "below the minimum latency of the search space";
- no feasible architecture of finite log-probability: the entry points that read logits raise the
  one ``ValueError`` "no architecture within the latency bound ... finite log-probability";
- otherwise each answers with feasible architectures of finite log-probability, and the exact ones
  (selection, top-k, the validation pick) equal brute force; ``inf`` is no bound everywhere.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import enot.functional as ef
from enot.functional._selection import feasible_alternatives

SUBNORMAL = 5e-324
LATENCY = st.sampled_from([0.0, 0.0, SUBNORMAL, 1e-310, 0.1, 0.2, 0.3, 1.0, 2.5, 7.0])
LOGIT = st.one_of(
    st.floats(-8.0, 8.0, allow_nan=False),
    st.sampled_from([0.0, -800.0, -1e4, -1e300, -math.inf]),
)
BELOW = "below the minimum latency of the search space"
NONE_FINITE = "no architecture within the latency bound .* has a finite log-probability"


@st.composite
def problems(draw):
    counts = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    table = ef.latency_table(draw(LATENCY), [draw(st.lists(LATENCY, min_size=n, max_size=n)) for n in counts])
    logits = []
    for n in counts:
        values = draw(st.lists(LOGIT, min_size=n, max_size=n))
        if all(v == -math.inf for v in values):
            values[draw(st.integers(0, n - 1))] = 0.0  # softmax of all -inf is NaN: not a distribution
        logits.append(torch.tensor(values, dtype=torch.float64))
    latencies = sorted({_latency(a, table) for a in _architectures(counts)})
    lo, hi = latencies[0], latencies[-1]
    value = draw(st.sampled_from([
        0.0, SUBNORMAL, math.inf, math.nan, lo, hi, draw(st.sampled_from(latencies)),
        lo + (hi - lo) * draw(st.floats(0.0, 1.0)), lo - 1.0, math.nextafter(lo, -math.inf),
    ]))
    form = draw(st.sampled_from(["float", "numpy", "tensor"]))
    bound = {"float": value, "numpy": np.float64(value), "tensor": torch.tensor(value, dtype=torch.float64)}[form]
    return logits, table, bound, value


def _architectures(counts):
    return [list(a) for a in itertools.product(*(range(n) for n in counts))]


def _latency(architecture, table) -> float:
    return float(ef.architecture_latency(list(architecture), table))


def _entry_points(logits, table, bound, key):
    """Each entry point that takes a bound, as ``name -> thunk``; each returns the architectures it gives."""
    n_choices = [l.numel() for l in logits]

    def evolution():
        state = ef.evolution_init(key, lambda a: float(sum(a)), n_choices, table=table, max_latency=bound,
                                  config=ef.EvolutionConfig(population_size=2, novelty_tries=2))
        return [list(map(int, a)) for a in state.population.tolist()]

    def search_sample(estimator):
        _, sample = ef.next_search_sample(key, logits, table, bound, estimator=estimator)
        return [sample.architecture] + ([sample.alternatives] if estimator == "two_path" else [])

    return {
        "select_architecture": lambda: [ef.select_architecture(logits, table, bound)],
        "top_k_architectures": lambda: ef.top_k_architectures(logits, table, bound, 3),
        "sample_feasible_architecture": lambda: [ef.sample_feasible_architecture(key, logits, table, bound)],
        "feasible sampler": lambda: ef.sample_architectures(
            key, "feasible", ef.SamplingInputs(tuple(n_choices), tuple(logits), table, bound)),
        "next_search_sample two_path": lambda: search_sample("two_path"),
        "next_search_sample first_order": lambda: search_sample("first_order"),
        "validation_pick": lambda: ef.validation_pick(logits, table, bound, 2).candidates,
        "evolution_init": evolution,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(0, 2**31))
def test_every_entry_point_taking_a_bound_agrees_with_brute_force(problem, seed):
    logits, table, bound, value = problem
    architectures = _architectures([l.numel() for l in logits])
    feasible = [a for a in architectures if not math.isnan(value) and _latency(a, table) <= value]
    finite = [a for a in feasible if ef.architecture_log_probability(a, logits) > -math.inf]
    for name, run in _entry_points(logits, table, bound, ef.random.key(seed)).items():
        reads_logits = name != "evolution_init"
        if math.isnan(value):
            expected = "nan"
        elif not feasible:
            expected = BELOW
        elif reads_logits and not finite:
            expected = NONE_FINITE
        else:
            expected = None
        if expected is not None:
            with pytest.raises(ValueError, match=expected):
                run()
            continue
        answer = run()
        allowed = finite if reads_logits else feasible
        assert answer and all(a in allowed for a in answer), (name, answer, allowed)
    if feasible and finite and not math.isnan(value):
        best = max(ef.architecture_log_probability(a, logits) for a in finite)
        chosen = ef.select_architecture(logits, table, bound)
        assert math.isclose(ef.architecture_log_probability(chosen, logits), best, rel_tol=1e-12, abs_tol=1e-9)
        top = ef.top_k_architectures(logits, table, bound, 3)
        assert len(top) == min(3, len(finite)) and len({tuple(a) for a in top}) == len(top)
        assert ef.validation_pick(logits, table, bound).architecture == chosen


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_feasible_alternatives_agree_with_brute_force(problem, seed):
    logits, table, bound, value = problem
    architectures = _architectures([l.numel() for l in logits])
    architecture = architectures[seed % len(architectures)]
    if math.isnan(value):
        with pytest.raises(ValueError, match="nan"):
            feasible_alternatives(architecture, table, bound)
        return
    masks = feasible_alternatives(architecture, table, bound)
    for c, mask in enumerate(masks):
        for j in range(mask.numel()):
            swapped = list(architecture)
            swapped[c] = j
            assert bool(mask[j]) == (_latency(swapped, table) <= value)


@pytest.mark.parametrize("bound", [math.inf, np.float32("inf"), torch.tensor(math.inf)])
def test_an_infinite_bound_is_no_bound_everywhere(bound):
    table = ef.latency_table(1.0, [[1.0, 5.0], [2.0, 3.0, 9.0]])
    logits = [torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64)]
    key = ef.random.key(3)
    assert ef.sample_feasible_architecture(key, logits, table, bound) == ef.sample_feasible_architecture(
        key, logits, table, None) == ef.categorical_architecture(key, logits)
    for estimator in ("two_path", "first_order"):
        with_inf = ef.next_search_sample(key, logits, table, bound, estimator=estimator)[1]
        without = ef.next_search_sample(key, logits, None, None, estimator=estimator)[1]
        assert with_inf.architecture == without.architecture and with_inf.alternatives == without.alternatives
    assert ef.select_architecture(logits, table, bound) == ef.best_architecture(logits)
    assert ef.validation_pick(logits, table, bound).architecture == ef.validation_pick(logits, None, None).architecture
    def evaluate(a):
        return float(sum(a))

    a = ef.evolution_search(key, evaluate, 2, table=table, max_latency=bound)
    b = ef.evolution_search(key, evaluate, 2, table=table, max_latency=None)
    assert a.architecture == b.architecture and a.best_scores == b.best_scores
    assert float(ef.latency_penalty(logits, table, bound, 3.0)) == 0.0


def test_underflowing_probabilities_are_not_zero():
    # exp(-800) is 0 in float64; only candidate 1 fits: the answer is certain, not "-inf everywhere".
    table = ef.latency_table(0.0, [[1.0, 0.0]])
    logits = [torch.tensor([0.0, -800.0], dtype=torch.float64)]
    assert ef.select_architecture(logits, table, 0.5) == [1]
    for key in ef.random.split(ef.random.key(0), 5):
        assert ef.sample_feasible_architecture(key, logits, table, 0.5) == [1]
    # Two containers, one slow candidate allowed: (0, 1) and (1, 0) have probability exp(-800) each.
    table = ef.latency_table(0.0, [[1.0, 0.0], [1.0, 0.0]])
    logits = [torch.tensor([0.0, -800.0], dtype=torch.float64)] * 2
    draws = {tuple(ef.sample_feasible_architecture(k, logits, table, 1.0)) for k in ef.random.split(ef.random.key(1), 60)}
    assert draws == {(0, 1), (1, 0)}


@pytest.mark.parametrize("bad", ["1.0", True, None, torch.tensor([1.0, 2.0]), torch.tensor(1.0j), [1.0]])
def test_every_entry_point_refuses_the_same_non_numbers(bad):
    table = ef.latency_table(0.0, [[1.0, 2.0]])
    logits = [torch.zeros(2, dtype=torch.float64)]
    calls = {
        "select_architecture": lambda: ef.select_architecture(logits, table, bad),
        "top_k_architectures": lambda: ef.top_k_architectures(logits, table, bad, 2),
        "sample_feasible_architecture": lambda: ef.sample_feasible_architecture(ef.random.key(0), logits, table, bad),
        "feasible_alternatives": lambda: feasible_alternatives([0], table, bad),
        "evolution_init": lambda: ef.evolution_init(ef.random.key(0), lambda a: 0.0, table=table, max_latency=bad),
        "latency_penalty": lambda: ef.latency_penalty(logits, table, bad),
        "check_latency_bound": lambda: ef.check_latency_bound(bad, table),
    }
    if bad is None:  # None is "no bound" where a bound is optional
        calls = {k: v for k, v in calls.items() if k in ("select_architecture", "top_k_architectures", "latency_penalty",
                                                         "check_latency_bound")}
    messages = set()
    for call in calls.values():
        with pytest.raises(TypeError) as error:
            call()
        messages.add(re.sub(r"^\w+: ", "", str(error.value)))
    assert len(messages) == 1, messages
