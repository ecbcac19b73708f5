"""Issue 12, class 10: spaces that cannot work are refused early, naming the container and the shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enot import functional as F
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer
from tests._unchanged import assert_unchanged, snapshot


def _mismatched() -> SearchSpaceModel:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6),
        SearchVariantsContainer([nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6)), nn.Linear(6, 6)]),
        SearchVariantsContainer([nn.Linear(6, 3), nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5))]),
        nn.ReLU(),
    )
    return SearchSpaceModel(model)


def test_candidates_with_different_output_shapes_refused_at_initialization() -> None:
    ss = _mismatched()
    x = torch.randn(8, 4)
    before = snapshot(ss)
    with pytest.raises(
        ValueError,
        match=r"container 'original_model.2' give outputs of different shapes \(candidate 0: \(8, 3\), candidate 1: \(8, 5\)\)",
    ):
        ss.initialize_output_distribution_optimization(x)
    # Container 1 was rescaled before container 2 was reached: those weights are put back too.
    assert_unchanged(before, ss)
    assert not ss.output_distribution_optimization_enabled


def test_candidate_that_fails_on_the_container_input_is_named() -> None:
    torch.manual_seed(0)
    ss = SearchSpaceModel(nn.Sequential(nn.Linear(4, 6), SearchVariantsContainer([nn.Linear(6, 2), nn.Linear(7, 2)])))
    x = torch.randn(3, 4)
    before = snapshot(ss)
    with pytest.raises(ValueError, match=r"candidate 1 of container 'original_model.1' fails on the container's input \(3, 6\)"):
        ss.initialize_output_distribution_optimization(x)
    assert_unchanged(before, ss)


def test_structured_outputs_are_compared_leaf_by_leaf() -> None:
    class Pair(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, width)

        def forward(self, x):
            return self.a(x), self.b(x)

    class Head(nn.Module):
        def __init__(self, container):
            super().__init__()
            self.c = container

        def forward(self, x):
            a, b = self.c(x)
            return a.sum() + b.sum()

    ss = SearchSpaceModel(Head(SearchVariantsContainer([Pair(4), Pair(4)])))
    ss.initialize_output_distribution_optimization(torch.randn(3, 4))  # same shapes: accepted
    bad = SearchSpaceModel(Head(SearchVariantsContainer([Pair(4), Pair(2)])))
    with pytest.raises(ValueError, match=r"candidate 0: \(\(3, 4\), \(3, 4\)\), candidate 1: \(\(3, 4\), \(3, 2\)\)"):
        bad.initialize_output_distribution_optimization(torch.randn(3, 4))


def _container_model() -> SearchVariantsContainer:
    torch.manual_seed(0)
    return SearchVariantsContainer(
        [nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Tanh())]
    )


def test_a_model_that_is_itself_a_container_works_in_every_phase() -> None:
    ss = SearchSpaceModel(_container_model())
    assert ss.layout.container_names == ("original_model",)
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    ss.initialize_output_distribution_optimization(x)

    def loss_of(model):
        return nn.functional.cross_entropy(model(x), y)

    pretrain = EnotPretrainOptimizer(ss, torch.optim.SGD(ss.model_parameters(), lr=0.1), sampler="fair")
    before = {n: p.detach().clone() for n, p in ss.named_parameters()}
    pretrain.zero_grad()

    def closure():
        loss = loss_of(ss)
        loss.backward()
        return loss

    pretrain.step(closure)
    assert sorted(a[0] for a in pretrain.last_architectures) == [0, 1, 2]
    changed = {n for n, p in ss.named_parameters() if not torch.equal(p, before[n])}
    assert "original_model.search_variants.1.weight" in changed and "architecture_logits.0" not in changed

    search = EnotSearchOptimizer(
        ss, torch.optim.Adam(ss.architecture_parameters(), lr=0.1), bn_tune_dataloader=[(x, y)], bn_tune_batches=1
    )
    for _ in range(3):
        search.zero_grad()
        search.step(lambda: loss_of(ss).backward())
    assert not torch.equal(ss.architecture_logits[0], torch.zeros(3))
    chosen = search.prepare_validation_model()
    network = ss.get_network_by_indexes(chosen)
    assert not any(isinstance(m, SearchVariantsContainer) for m in network.modules())
    ss.eval()
    network.eval()
    torch.testing.assert_close(network(x), ss(x), rtol=0, atol=0)


def test_a_model_that_is_itself_a_container_in_the_functional_core() -> None:
    ss = SearchSpaceModel(_container_model()).double()
    split = F.split_search_space(ss)
    apply = F.make_apply(ss)
    x = torch.randn(8, 4, dtype=torch.float64)
    for architecture in ([0], [1], [2]):
        out, _ = apply(split.params, split.buffers, architecture, x)
        with ss.selected(architecture):
            ss.train()
            expected = ss(x)
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    names = F.path_names(ss.layout, [1])
    assert "original_model.search_variants.1.weight" in names and "original_model.search_variants.0.0.weight" not in names
