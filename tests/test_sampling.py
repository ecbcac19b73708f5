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


def test_uniform_sampling_follows_its_distribution():
    n_choices = (3, 5)
    counts = [collections.Counter() for _ in n_choices]
    key = ef.random.key(0)
    for _ in range(3000):
        key, sub = ef.random.split(key)
        for c, i in enumerate(ef.uniform_architecture(sub, n_choices)):
            counts[c][i] += 1
    for c, n in enumerate(n_choices):
        stat = _chi_square([counts[c][i] for i in range(n)], [1 / n] * n)
        assert stat < CHI2_999[n - 1]


def test_categorical_sampling_follows_softmax():
    logits = [torch.tensor([0.0, 1.0, -1.0]), torch.tensor([2.0, 0.0])]
    counts = [collections.Counter() for _ in logits]
    key = ef.random.key(5)
    for _ in range(3000):
        key, sub = ef.random.split(key)
        for c, i in enumerate(ef.categorical_architecture(sub, logits)):
            counts[c][i] += 1
    for c, l in enumerate(logits):
        p = torch.softmax(l.double(), 0).tolist()
        stat = _chi_square([counts[c][i] for i in range(len(p))], p)
        assert stat < CHI2_999[len(p) - 1]


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
