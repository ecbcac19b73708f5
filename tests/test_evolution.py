"""Evolutionary search: brute force on small spaces, exact feasible mutation/crossover, facade == functional."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as Fn

import enot.functional as ef
from enot.latency import SearchSpaceLatencyContainer
from enot.optimize import EvolutionSearch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions on two threads of a loaded 2-core machine spin: 0.4 s became 48 s (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_scores(n_choices, seed):
    """A deterministic, non-additive score for every architecture of the space."""
    g = torch.Generator().manual_seed(seed)
    every = list(itertools.product(*(range(n) for n in n_choices)))
    return {a: float(v) for a, v in zip(every, torch.randn(len(every), generator=g, dtype=torch.float64))}


def _brute_force_best(scores, table, bound):
    feasible = [a for a in scores if float(ef.architecture_latency(list(a), table)) <= bound]
    return max(feasible, key=lambda a: scores[a])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_the_brute_force_best_on_a_tiny_space(seed):
    # 3 x 3 x 3 = 27 architectures, a bound that excludes the best ones unconstrained.
    table = ef.latency_table(1.0, [[0.0, 1.0, 2.0], [0.0, 1.5, 3.0], [0.0, 0.5, 2.5]])
    scores = _random_scores((3, 3, 3), seed)
    bound = 4.0
    result = ef.evolution_search(
        ef.random.key(seed), lambda a: scores[tuple(a)], 8, table=table, max_latency=bound,
        config=ef.EvolutionConfig(population_size=6),
    )
    assert tuple(result.architecture) == _brute_force_best(scores, table, bound)
    assert result.score == scores[tuple(result.architecture)]
    unconstrained = max(scores, key=scores.get)
    if float(ef.architecture_latency(list(unconstrained), table)) > bound:
        assert tuple(result.architecture) != unconstrained


@pytest.mark.parametrize("seed", [0, 1])
def test_finds_the_constrained_optimum_of_a_larger_space_scoring_a_fraction_of_it(seed):
    # 4**6 = 4096 architectures; a score with a strong additive part and pairwise interactions (as
    # accuracies of neighbouring blocks are); the optimum under the bound is found after scoring
    # a few percent of the space.
    n_choices = (4,) * 6
    g = torch.Generator().manual_seed(100 + seed)
    unary = torch.randn(6, 4, generator=g, dtype=torch.float64)
    pair = 0.3 * torch.randn(5, 4, 4, generator=g, dtype=torch.float64)
    lat = torch.rand(6, 4, generator=g, dtype=torch.float64)
    table = ef.latency_table(0.5, list(lat))
    low, high = float(ef.min_latency(table)), float(ef.max_latency(table))
    bound = low + 0.5 * (high - low)

    def score(a):
        return float(sum(unary[c, a[c]] for c in range(6)) + sum(pair[c, a[c], a[c + 1]] for c in range(5)))

    scores = {a: score(a) for a in itertools.product(*(range(n) for n in n_choices))}
    result = ef.evolution_search(
        ef.random.key(seed), score, 25, table=table, max_latency=bound, config=ef.EvolutionConfig(population_size=16)
    )
    assert tuple(result.architecture) == _brute_force_best(scores, table, bound)
    assert result.state.evaluated.shape[0] < 0.1 * len(scores)


def test_mutation_changes_the_redrawn_containers_only_and_crossover_mixes_parents():
    table = ef.latency_table(0.0, [[1.0, 2.0, 3.0, 4.0]] * 5)
    scores = _random_scores((4,) * 5, 3)
    bound = 12.0
    common = dict(table=table, max_latency=bound)
    start = ef.evolution_init(ef.random.key(5), lambda a: scores[tuple(a)], config=ef.EvolutionConfig(8), **common)
    parents = start.population[torch.sort(-start.scores, stable=True).indices[:2]].tolist()
    # Only mutations, one container each (mutation_probability 0: exactly one is redrawn).
    mutate = ef.EvolutionConfig(8, parents_ratio=0.25, mutation_ratio=1.0, mutation_probability=0.0)
    state = ef.evolution_step(lambda a: scores[tuple(a)], start, config=mutate, **common)
    assert state.population[:2].tolist() == parents
    for child in state.population[2:].tolist():
        assert min(sum(x != y for x, y in zip(child, p)) for p in parents) <= 1
    # Only crossovers: every entry of a child is one of its parents' (two parents here: all of them).
    cross = ef.EvolutionConfig(8, parents_ratio=0.25, mutation_ratio=0.0)
    state = ef.evolution_step(lambda a: scores[tuple(a)], start, config=cross, **common)
    for child in state.population[2:].tolist():
        assert all(k in (parents[0][c], parents[1][c]) for c, k in enumerate(child))
    for child in state.population.tolist():
        assert float(ef.architecture_latency(child, table)) <= bound


def test_a_single_feasible_architecture_ends_the_search_without_looping():
    # The bound admits exactly one architecture: every draw returns it; novelty tries are bounded.
    table = ef.latency_table(0.0, [[0.1, 0.2, 0.3], [0.2, 0.1, 0.3]])
    calls = []
    result = ef.evolution_search(
        ef.random.key(0), lambda a: calls.append(a) or 1.0, 5, table=table, max_latency=0.2,
        config=ef.EvolutionConfig(4),
    )
    assert result.architecture == [0, 1] and calls == [[0, 1]]


def test_the_key_decides_the_search_and_the_state_is_not_changed():
    table = ef.latency_table(0.0, [[1.0, 2.0, 3.0]] * 6)
    scores = _random_scores((3,) * 6, 4)
    evaluate = lambda a: scores[tuple(a)]  # noqa: E731
    runs = [
        ef.evolution_search(ef.random.key(s), evaluate, 3, table=table, max_latency=12.0, config=ef.EvolutionConfig(6)).state
        for s in (7, 7, 8)
    ]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not torch.equal(runs[0].evaluated, runs[2].evaluated)
    before = [t.clone() for t in runs[0]]
    after = ef.evolution_step(evaluate, runs[0], table=table, max_latency=12.0, config=ef.EvolutionConfig(6))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], before))
    assert int(after.step) == 4 and not torch.equal(after.key, runs[0].key)


def test_bad_input_is_refused():
    table = ef.latency_table(1.0, [[1.0, 2.0], [1.0, 3.0]])
    evaluate = lambda a: 0.0  # noqa: E731
    with pytest.raises(ValueError, match=r"below the minimum latency of the search space \(3.0\)"):
        ef.evolution_search(ef.random.key(0), evaluate, 1, table=table, max_latency=2.5)
    with pytest.raises(ValueError, match="population_size must be an int >= 2"):
        ef.evolution_search(ef.random.key(0), evaluate, 1, table=table, config=ef.EvolutionConfig(1))
    with pytest.raises(ValueError, match=r"mutation_ratio must be a number in \[0, 1\]"):
        ef.evolution_search(ef.random.key(0), evaluate, 1, table=table, config=ef.EvolutionConfig(4, mutation_ratio=2))
    with pytest.raises(ValueError, match="max_latency needs the latency table"):
        ef.evolution_search(ef.random.key(0), evaluate, 1, (2, 2), max_latency=3.0)
    with pytest.raises(FloatingPointError, match="NaN for architecture"):
        ef.evolution_search(ef.random.key(0), lambda a: float("nan"), 1, table=table)
    with pytest.raises(TypeError, match="must return a number"):
        ef.evolution_search(ef.random.key(0), lambda a: None, 1, table=table)
    # Without a table, n_choices alone: no bound.
    result = ef.evolution_search(ef.random.key(0), lambda a: float(sum(a)), 2, (2, 3), config=ef.EvolutionConfig(4))
    assert result.architecture == [1, 2]


# ----------------------------------------------------------------------------------------- facade
def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
        for _ in range(n)
    ]


def _space_with_latency(space):
    ss = space.double()
    values = [[float(k + 1) + 0.5 * c for k in range(n)] for c, n in enumerate(ss.layout.n_choices)]
    ss.apply_latency_container(SearchSpaceLatencyContainer("mmac", 1.0, values))
    return ss, ef.latency_table(1.0, values)


@pytest.mark.parametrize("tune_bn", [False, True])
def test_facade_equals_functional_in_float64(mobilenet_space, tune_bn):
    ss, table = _space_with_latency(mobilenet_space)
    bound = float(ef.min_latency(table) + 0.5 * (ef.max_latency(table) - ef.min_latency(table)))
    validation, bn_data = _data(2, 0), _data(3, 1)
    trees = ef.split_search_space(ss)
    before = ef.split_search_space(ss)
    selected, training = ss.forward_architecture, ss.training

    @torch.no_grad()
    def evaluate_function(model):  # ENOT's contract: the model with the architecture selected
        return -sum(float(Fn.cross_entropy(model(x), y)) for x, y in validation)

    search = EvolutionSearch(
        ss, evaluate_function, 2, max_latency_value=bound, population_size=4, seed=3,
        bn_tune_dataloader=bn_data if tune_bn else None, bn_tune_batches=2,
    )
    architecture, metrics = search.find_best_arch(return_metrics=True)
    # The search space is as it was.
    after = ef.split_search_space(ss)
    for name in before.buffers:
        assert torch.equal(after.buffers[name], before.buffers[name]), name
    assert ss.forward_architecture == selected and ss.training == training
    # Functional: the same key, BN tuned on the same batches, the same numbers.
    apply = ef.make_apply(ss)

    @torch.no_grad()
    def metric(arch, buffers):
        return -sum(float(Fn.cross_entropy(apply(trees.params, buffers, arch, x)[0], y)) for x, y in validation)

    evaluate = ef.bn_tuned_evaluation(ss, trees.params, trees.buffers, bn_data[:2] if tune_bn else [], metric)
    ss.eval()
    result = ef.evolution_search(
        ef.random.key(3), evaluate, 2, ss.layout.n_choices, table=table, max_latency=bound,
        config=ef.EvolutionConfig(population_size=4),
    )
    ss.train(training)
    assert architecture == result.architecture
    assert metrics["architectures"] == result.state.evaluated.tolist()
    assert metrics["metrics"] == result.state.evaluated_scores.tolist()  # bit for bit
    assert metrics["metric"] == result.score and metrics["evaluations"] == len(metrics["metrics"])
    assert metrics["latency"] == float(ef.architecture_latency(architecture, table)) <= bound
    assert len(metrics["best_metric_per_step"]) == 3
    if tune_bn:  # tuning changed the scores (the test would not see a facade that skipped it)
        untuned = ef.bn_tuned_evaluation(ss, trees.params, trees.buffers, [], metric)
        ss.eval()
        assert untuned(architecture) != metrics["metric"]
        ss.train(training)


def test_facade_restores_the_search_space_when_the_evaluation_fails(mobilenet_space):
    ss, table = _space_with_latency(mobilenet_space)
    before = ef.split_search_space(ss)
    ss.sample([1] * len(ss.layout.n_choices))
    calls = []

    def evaluate_function(model):
        calls.append(model.forward_architecture)
        assert not model.training
        return 0.0 if len(calls) < 3 else float("nan")

    search = EvolutionSearch(ss, evaluate_function, 1, population_size=4, bn_tune_dataloader=_data(2, 0))
    with pytest.raises(FloatingPointError, match="NaN"):
        search.find_best_arch()
    after = ef.split_search_space(ss)
    for name in before.buffers:
        assert torch.equal(after.buffers[name], before.buffers[name]), name
    assert ss.forward_architecture == [1] * len(ss.layout.n_choices) and ss.training


def test_facade_refuses_bad_input(mobilenet_space, nested_space):
    with pytest.raises(RuntimeError, match="initialize_latency"):
        EvolutionSearch(nested_space, lambda m: 0.0, 1, max_latency_value=1.0)
    ss, table = _space_with_latency(mobilenet_space)
    minimum = float(ef.min_latency(table))
    with pytest.raises(ValueError, match=rf"below the minimum latency of the search space \({minimum!r}\)"):
        EvolutionSearch(ss, lambda m: 0.0, 1, max_latency_value=minimum - 0.1)
    with pytest.raises(TypeError, match="expects a SearchSpaceModel"):
        EvolutionSearch(torch.nn.Linear(2, 2), lambda m: 0.0, 1)
    with pytest.raises(TypeError, match="evaluate_function must be callable"):
        EvolutionSearch(ss, None, 1)
    with pytest.raises(ValueError, match="EvolutionSearch: search_steps must be a non-negative int"):
        EvolutionSearch(ss, lambda m: 0.0, -1)
    with pytest.raises(ValueError, match="EvolutionSearch: parents_ratio must be a number in"):
        EvolutionSearch(ss, lambda m: 0.0, 1, parents_ratio=1.5)
    with pytest.raises(ValueError, match="bn_tune_dataloader yields no batches"):
        EvolutionSearch(ss, lambda m: 0.0, 1, bn_tune_dataloader=[]).find_best_arch()
