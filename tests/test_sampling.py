"""Random keys and architecture samplers."""

from __future__ import annotations

import collections

import pytest
import torch

import enot.functional as ef

# 99.9% quantiles of the chi-square distribution for the degrees of freedom used below.
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47}


def _chi_square(counts: list[int], probabilities: list[float]) -> float:
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, probabilities))


def test_keys_are_deterministic_and_pure():
    k = ef.random.key(3)
    assert torch.equal(k, ef.random.key(3)) and not torch.equal(k, ef.random.key(4))
    copy = k.clone()
    a, b = ef.random.split(k)
    assert torch.equal(k, copy)
    assert not torch.equal(a, b)
    assert torch.equal(ef.random.split(k, 3)[0], ef.random.split(k, 3)[0])
    assert not torch.equal(ef.random.fold_in(k, 1), ef.random.fold_in(k, 2))
    with pytest.raises(ValueError):
        ef.random.key(-1)
    with pytest.raises(TypeError):
        ef.random.split(torch.zeros(3))


def test_same_seed_same_sequence():
    def run(seed):
        key, seq = ef.random.key(seed), []
        for _ in range(10):
            key, archs = ef.next_architectures(key, (3, 2, 5), "uniform")
            seq += archs
        return seq

    assert run(1) == run(1)
    assert run(1) != run(2)


def _assert_follows(draw, probabilities: list[list[float]], seed: int, draws: int = 3000) -> None:
    """``draw(key)``, called with ``draws`` successive keys, picks each container's index with the
    probabilities given (chi-square test at 99.9%), and only indices of that container."""
    counts = [collections.Counter() for _ in probabilities]
    key = ef.random.key(seed)
    for _ in range(draws):
        key, sub = ef.random.split(key)
        for c, i in enumerate(draw(sub)):
            counts[c][i] += 1
    for c, p in enumerate(probabilities):
        assert set(counts[c]) <= set(range(len(p))), (c, sorted(counts[c]))
        stat = _chi_square([counts[c][i] for i in range(len(p))], p)
        assert stat < CHI2_999[len(p) - 1]


def test_uniform_sampling_follows_its_distribution():
    n_choices = (3, 5)
    _assert_follows(lambda key: ef.uniform_architecture(key, n_choices), [[1 / n] * n for n in n_choices], seed=0)


def test_categorical_sampling_follows_softmax():
    logits = [torch.tensor([0.0, 1.0, -1.0]), torch.tensor([2.0, 0.0])]
    probabilities = [torch.softmax(l.double(), 0).tolist() for l in logits]
    _assert_follows(lambda key: ef.categorical_architecture(key, logits), probabilities, seed=5)


@pytest.mark.parametrize("n_choices", [(4, 4, 4), (3, 5, 2, 1), (1,)])
def test_fairness_trains_every_candidate_in_each_step(n_choices):
    key = ef.random.key(2)
    for _ in range(20):
        key, archs = ef.next_architectures(key, n_choices, "fair")
        assert len(archs) == max(n_choices)
        for c, n in enumerate(n_choices):
            counts = collections.Counter(a[c] for a in archs)
            assert set(counts) == set(range(n))
            low, high = divmod(max(n_choices), n)[0], -(-max(n_choices) // n)
            assert all(low <= v <= high for v in counts.values())
            if n == max(n_choices):
                assert all(v == 1 for v in counts.values())


def test_unknown_sampler_is_rejected():
    with pytest.raises(ValueError, match="sampler must be one of"):
        ef.next_architectures(ef.random.key(0), (2,), "greedy")


def test_registered_samplers_share_one_entry_point():
    key = ef.random.key(5)
    logits = (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 0.0]))
    table = ef.latency_table(0.0, [[1.0, 2.0, 3.0], [1.0, 2.0]])
    inputs = ef.SamplingInputs((3, 2), logits, table, 4.0)
    assert ef.sample_architectures(key, "uniform", inputs) == [ef.uniform_architecture(key, (3, 2))]
    assert ef.sample_architectures(key, "fair", inputs) == ef.fair_architectures(key, (3, 2))
    assert ef.sample_architectures(key, "categorical", inputs) == [ef.categorical_architecture(key, logits)]
    assert ef.sample_architectures(key, "feasible", inputs) == [
        ef.sample_feasible_architecture(key, logits, table, 4.0)
    ]
    with pytest.raises(ValueError, match="needs \\['logits'\\]"):
        ef.sample_architectures(key, "categorical", ef.SamplingInputs((3, 2)))
    with pytest.raises(ValueError, match="must be one of"):
        ef.sample_architectures(key, "nope", inputs)
    assert ef.available_samplers(given=()) == ("fair", "uniform")


def test_a_new_sampler_is_one_function_and_one_registration(monkeypatch):
    from enot.functional import _samplers
    from enot.models import SearchSpaceModel, SearchVariantsContainer
    from enot.optimize import EnotPretrainOptimizer

    monkeypatch.setattr(_samplers, "_REGISTRY", dict(_samplers._REGISTRY))  # registration undone after the test
    ef.register_sampler("first", lambda key, inputs: [[0] * len(inputs.n_choices)])
    with pytest.raises(ValueError, match="already registered"):
        ef.register_sampler("first", lambda key, inputs: [])
    with pytest.raises(ValueError, match="not fields"):
        ef.register_sampler("other", lambda key, inputs: [], needs=("weights",))
    _, archs = ef.next_architectures(ef.random.key(0), (3, 2), "first")
    assert archs == [[0, 0]]
    space = SearchSpaceModel(torch.nn.Sequential(SearchVariantsContainer([torch.nn.Identity(), torch.nn.ReLU()])))
    opt = EnotPretrainOptimizer(space, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
                                check_recommended_optimizations=False, sampler="first")
    opt.model_step(lambda: None)
    assert opt.last_architectures == [[0]]


def test_sample_random_arch_draws_from_an_explicit_key_or_generator(nested_space):
    a = nested_space.sample_random_arch(key=ef.random.key(1))
    assert a == ef.uniform_architecture(ef.random.key(1), nested_space.layout.n_choices)
    b = nested_space.sample_random_arch(torch.Generator().manual_seed(3))
    assert b == nested_space.sample_random_arch(torch.Generator().manual_seed(3))
