"""Latency tables that do not fit the space are refused wherever latencies are attached (issue 12, class 6)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import enot.functional as ef
import enot.latency as L
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotFixedLatencySearchOptimizer

NESTED_ERROR = r"container 'original_model\.0\.search_variants\.0' is nested in candidate 0 of container 'original_model\.0'; latency tables are additive"


def _flat() -> SearchSpaceModel:
    """Two containers with 2 and 3 candidates."""
    return SearchSpaceModel(nn.Sequential(
        SearchVariantsContainer([nn.Identity(), nn.ReLU()]),
        SearchVariantsContainer([nn.Identity(), nn.Tanh(), nn.Linear(3, 3)]),
    ))


def _nested() -> SearchSpaceModel:
    """Candidate 0 of the outer container is itself a container (the issue's example: 5.0 read for 0.0)."""
    return SearchSpaceModel(nn.Sequential(
        SearchVariantsContainer([SearchVariantsContainer([nn.Linear(3, 3), nn.Identity()]), nn.Identity()]),
    ))


def _fits() -> L.SearchSpaceLatencyContainer:
    return L.SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0], [3.0, 4.0, 5.0]])


@pytest.mark.parametrize("operations, message", [
    ([[1.0, 2.0]], "has 1 containers; the search space has 2"),
    ([[1.0, 2.0], [3.0, 4.0, 5.0], [6.0]], "has 3 containers; the search space has 2"),
    ([[1.0, 2.0, 9.0], [3.0, 4.0]], "has 3 candidates for container 0; the search space's 'original_model.0' has 2"),
    ([[3.0, 4.0, 5.0], [1.0, 2.0]], "has 3 candidates for container 0"),  # swapped counts
])
def test_apply_refuses_a_table_of_other_counts_and_keeps_the_previous_one(operations, message):
    space = _flat()
    good = _fits()
    space.apply_latency_container(good)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        space.apply_latency_container(L.SearchSpaceLatencyContainer("time", 0.0, operations))
    assert space.get_latency_container() is good and space.latency_type == "mmac"
    space.sample([1, 2])
    assert float(space.forward_latency) == 1.0 + 2.0 + 5.0


def test_load_from_file_into_an_applied_container_refuses_other_counts(tmp_path):
    space = _flat()
    container = _fits()
    space.apply_latency_container(container)
    swapped = tmp_path / "swapped.json"
    L.SearchSpaceLatencyContainer("mmac", 0.5, [[1.0, 2.0, 3.0], [4.0, 5.0]]).save_to_file(swapped)
    on_disk = swapped.read_bytes()
    before = container.to_dict()
    with pytest.raises(ValueError, match=r"swapped\.json' has 3 candidates for container 0; the search space's 'original_model\.0' has 2"):
        container.load_from_file(swapped)
    assert container.to_dict() == before and swapped.read_bytes() == on_disk
    space.sample([0, 2])
    assert float(space.forward_latency) == 1.0 + 1.0 + 5.0
    # Contents that fit load, and the space reads them.
    fitting = tmp_path / "fitting.json"
    L.SearchSpaceLatencyContainer("mmac", 2.0, [[0.0, 0.0], [0.0, 0.0, 7.0]]).save_to_file(fitting)
    assert container.load_from_file(fitting) is container
    assert float(space.forward_latency) == 9.0


def test_a_container_no_longer_applied_loads_any_counts(tmp_path):
    space = _flat()
    container = _fits()
    space.apply_latency_container(container)
    other = tmp_path / "other.json"
    L.SearchSpaceLatencyContainer("mmac", 0.0, [[1.0]]).save_to_file(other)
    L.reset_latency(space)
    assert container.load_from_file(other).n_choices == (1,)
    # Replacing the container detaches the previous one as well.
    first, second = _fits(), _fits()
    space.apply_latency_container(first)
    space.apply_latency_container(second)
    assert first.load_from_file(other).n_choices == (1,)
    with pytest.raises(ValueError, match="has 1 containers"):
        second.load_from_file(other)


def test_copies_of_the_space_keep_the_check(tmp_path):
    space = _flat()
    space.apply_latency_container(_fits())
    swapped = tmp_path / "swapped.json"
    L.SearchSpaceLatencyContainer("mmac", 0.5, [[1.0, 2.0, 3.0], [4.0, 5.0]]).save_to_file(swapped)
    for twin in (copy.deepcopy(space), pickle.loads(pickle.dumps(space))):
        with pytest.raises(ValueError, match="has 3 candidates for container 0"):
            twin.get_latency_container().load_from_file(swapped)


def test_every_read_checks_the_counts():
    """A LatencySource changed behind the space's back is caught at the next read, never read wrongly."""

    class Mutable:
        def __init__(self) -> None:
            self.inner = _fits()

        latency_type = property(lambda self: self.inner.latency_type)
        constant_latency = property(lambda self: self.inner.constant_latency)

        def table(self, **kwargs):
            return self.inner.table(**kwargs)

        def check_matches(self, n_choices, container_names=None):
            self.inner.check_matches(n_choices, container_names)

        def attach(self, search_space):
            pass  # a source that does not guard its changes

        def detach(self, search_space):
            pass

    space = _flat()
    source = Mutable()
    space.apply_latency_container(source)
    source.inner = L.SearchSpaceLatencyContainer("mmac", 0.0, [[1.0, 2.0, 3.0], [4.0, 5.0]])
    for read in (lambda: space.forward_latency, lambda: space.loss_latency_expectation, lambda: L.current_latency(space),
                 lambda: L.min_latency(space)):
        with pytest.raises(ValueError, match="has 3 candidates for container 0"):
            read()
    with pytest.raises(ValueError, match="has 3 candidates for container 0"):
        EnotFixedLatencySearchOptimizer(space, torch.optim.SGD(space.architecture_parameters(), lr=0.1), 10.0)


def test_nested_containers_are_refused_everywhere_with_one_error():
    space = _nested()
    table = L.SearchSpaceLatencyContainer("mmac", 0.0, [[5.0, 0.0], [0.0, 0.0]])  # fits the counts
    with pytest.raises(ValueError, match=NESTED_ERROR):
        space.apply_latency_container(table)
    assert space.latency_type is None and table._attached is not None and len(table._attached) == 0
    with pytest.raises(ValueError, match=NESTED_ERROR):
        L.initialize_latency("mmac", space, torch.randn(2, 3))
    assert space.latency_type is None
    trees = ef.split_search_space(space)
    state = ef.search_init(trees.buffers, trees.logits, ef.sgd(0.1), ef.random.key(0))
    with pytest.raises(ValueError, match=NESTED_ERROR):
        ef.search_step(
            ef.make_apply(space), ef.sgd(0.1), lambda out, batch: out.sum(), trees.params, state, [torch.randn(2, 3)],
            table=table.table(), latency_weight=1.0,
        )


def test_functional_search_step_refuses_a_table_of_other_counts():
    space = _flat()
    trees = ef.split_search_space(space)
    state = ef.search_init(trees.buffers, trees.logits, ef.sgd(0.1), ef.random.key(0))
    bad = L.SearchSpaceLatencyContainer("mmac", 0.0, [[1.0, 2.0, 3.0], [4.0, 5.0]]).table()
    with pytest.raises(ValueError, match="the latency table has 3 candidates for container 0"):
        ef.search_step(
            ef.make_apply(space), ef.sgd(0.1), lambda out, batch: out.sum(), trees.params, state, [torch.randn(2, 3)],
            table=bad, max_latency=100.0,
        )
