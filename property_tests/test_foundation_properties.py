"""Invariants of the foundation: extraction, sampling and pure optimizer updates."""

from __future__ import annotations

import collections

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import enot.functional as ef
from enot.models import SearchSpaceModel
from tests.spaces import Nested, tiny_mobilenet

torch.manual_seed(0)
_MOBILENET = SearchSpaceModel(tiny_mobilenet()).eval()
_NESTED = SearchSpaceModel(Nested()).eval()
_X = {id(_MOBILENET): torch.randn(2, 1, 12, 12), id(_NESTED): torch.randn(2, 1, 8, 8)}


@st.composite
def space_and_architecture(draw):
    space = draw(st.sampled_from([_MOBILENET, _NESTED]))
    arch = [draw(st.integers(0, n - 1)) for n in space.layout.n_choices]
    return space, arch


@settings(max_examples=25, deadline=None)
@given(space_and_architecture())
def test_extracted_network_equals_supernet_path(case):
    space, arch = case
    x = _X[id(space)]
    with torch.no_grad(), space.selected(arch):
        expected = space(x)
    net = space.get_network_by_indexes(arch).eval()
    with torch.no_grad():
        assert torch.equal(net(x), expected)
    assert not any(type(m).__module__.startswith("enot") for m in net.modules())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 2**31))
def test_fair_sampling_balances_every_container(n_choices, seed):
    archs = ef.fair_architectures(ef.random.key(seed), n_choices)
    assert len(archs) == max(n_choices)
    for c, n in enumerate(n_choices):
        counts = collections.Counter(a[c] for a in archs)
        assert set(counts) == set(range(n))
        assert max(counts.values()) - min(counts.values()) <= 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 2**31), st.integers(0, 4), st.data())
def test_sandwich_paths_are_largest_smallest_then_valid_uniform_draws(n_choices, seed, n_random, data):
    largest = tuple(data.draw(st.integers(0, n - 1)) for n in n_choices)
    smallest = tuple(data.draw(st.integers(0, n - 1)) for n in n_choices)
    sandwich = ef.check_sandwich(ef.Sandwich(largest, smallest, n_random), n_choices)
    key = ef.random.key(seed)
    new_key, archs = ef.sandwich_architectures(key, n_choices, sandwich)
    assert archs[:2] == [list(largest), list(smallest)] and len(archs) == 2 + n_random
    assert all(0 <= i < n for a in archs for i, n in zip(a, n_choices))
    again_key, again = ef.sandwich_architectures(key, n_choices, sandwich)
    assert again == archs and torch.equal(again_key, new_key) and not torch.equal(new_key, key)


_OPTIMIZERS = [ef.sgd(0.1), ef.sgd(0.1, 0.9, weight_decay=0.01, nesterov=True), ef.adam(1e-2), ef.adamw(1e-2)]


@st.composite
def trees_and_subset(draw):
    n = draw(st.integers(1, 4))
    shapes = [tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))) for _ in range(n)]
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    params = {f"p{i}": torch.randn(s, generator=g, dtype=dtype) for i, s in enumerate(shapes)}
    subset = draw(st.lists(st.sampled_from(sorted(params)), unique=True))
    grads = {name: torch.randn(params[name].shape, generator=g, dtype=dtype) for name in subset}
    return params, grads, draw(st.sampled_from(range(len(_OPTIMIZERS))))


@settings(max_examples=60, deadline=None)
@given(trees_and_subset())
def test_updates_keep_structure_and_touch_only_the_subset(case):
    params, grads, which = case
    opt = _OPTIMIZERS[which]
    state = opt.init(params)
    new_params, new_state = opt.update(grads, state, params)
    assert sorted(new_params) == sorted(params)
    for name, value in new_params.items():
        assert value.shape == params[name].shape and value.dtype == params[name].dtype
        if name not in grads:
            assert value is params[name]
    for old, new in zip(state, new_state):
        assert sorted(old) == sorted(new)
        for name in old:
            assert new[name].shape == old[name].shape and new[name].dtype == old[name].dtype
            if name not in grads:
                assert new[name] is old[name]
