"""Issue 12, class 5: batch-norm tuning on nothing raises and leaves the statistics untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enot import functional as F
from enot.models import SearchSpaceModel
from enot.optimize import EnotSearchOptimizer
from enot.utils import tune_bn_stats
from tests._unchanged import assert_unchanged, snapshot
from tests.spaces import tiny_mobilenet


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    tune_bn_stats(net, [(torch.randn(8, 3) + 2, None)] * 3)  # statistics away from the reset values
    return net


def _batches(n: int):
    return [(torch.randn(8, 3), torch.zeros(8)) for _ in range(n)]


def _exhausted():
    generator = (batch for batch in _batches(2))
    list(generator)
    return generator


@pytest.mark.parametrize("source", ["empty list", "exhausted generator", "empty DataLoader"])
def test_tune_bn_stats_on_nothing_raises_and_changes_nothing(source: str) -> None:
    net = _net()
    loader = {
        "empty list": lambda: [],
        "exhausted generator": _exhausted,
        "empty DataLoader": lambda: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 3))),
    }[source]()
    before = snapshot(net, rng=source != "empty DataLoader")  # iter(DataLoader) draws a seed
    with pytest.raises(ValueError, match="epoch 1 of 1 got no batch.*unchanged"):
        tune_bn_stats(net, loader)
    assert_unchanged(before, net)


def test_tune_bn_stats_generator_exhausted_by_the_first_epoch() -> None:
    net = _net()
    batches = _batches(3)
    before = snapshot(net)
    with pytest.raises(ValueError, match="epoch 2 of 2 got no batch.*generator"):
        tune_bn_stats(net, (b for b in batches), epochs=2)
    assert_unchanged(before, net)  # the first epoch's statistics were not copied in either
    tune_bn_stats(net, batches, epochs=2)  # a list is read once per epoch
    assert int(net[1].num_batches_tracked) == 6


def test_tune_bn_stats_refuses_what_is_not_iterable() -> None:
    net = _net()
    before = snapshot(net)
    for bad in (3, None, "batches"):
        with pytest.raises(TypeError, match="dataloader must be an iterable"):
            tune_bn_stats(net, bad)
    assert_unchanged(before, net)


def test_functional_bn_tune_on_nothing_raises() -> None:
    net = _net()
    params, buffers = dict(net.named_parameters()), dict(net.named_buffers())
    batches = _batches(2)
    before = snapshot(net)
    with pytest.raises(ValueError, match="no batch \\(batches is empty"):
        F.bn_tune(net, params, buffers, iter(()))
    with pytest.raises(ValueError, match="no batch \\(max_batches=0\\)"):
        F.bn_tune(net, params, buffers, batches, max_batches=0)
    assert_unchanged(before, net)
    assert F.bn_tune(net, params, buffers, batches[:1])["1.num_batches_tracked"] == 1


def _search(loader):
    torch.manual_seed(0)
    ss = SearchSpaceModel(tiny_mobilenet())
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        ss.train()
        ss(x * 3 + 1)  # running statistics away from the reset values
    optimizer = torch.optim.Adam(ss.architecture_parameters(), lr=0.1)
    return ss, EnotSearchOptimizer(ss, optimizer, bn_tune_dataloader=loader, bn_tune_batches=2), x


@pytest.mark.parametrize("source", ["empty list", "exhausted generator"])
def test_search_bn_tuning_on_nothing_raises_and_leaves_buffers(source: str) -> None:
    loader = [] if source == "empty list" else _exhausted()
    ss, opt, x = _search(loader)
    buffers = {n: b.clone() for n, b in ss.named_buffers()}
    params = {n: p.detach().clone() for n, p in ss.named_parameters()}

    def closure():
        ss(x).sum().backward()

    with pytest.raises(ValueError, match="bn_tune_dataloader yields no batches.*generator.*unchanged"):
        opt.step(closure)
    for name, value in ss.named_buffers():
        assert torch.equal(value, buffers[name]), name
    for name, value in ss.named_parameters():
        assert torch.equal(value, params[name]), name
    with pytest.raises(ValueError, match="yields no batches"):
        opt.prepare_validation_model()
    for name, value in ss.named_buffers():
        assert torch.equal(value, buffers[name]), name


@pytest.mark.parametrize("bad", [3, 2.5, "loader", object()])
def test_search_refuses_a_loader_that_is_not_iterable_at_construction(bad) -> None:
    ss = SearchSpaceModel(tiny_mobilenet())
    optimizer = torch.optim.Adam(ss.architecture_parameters(), lr=0.1)
    with pytest.raises(TypeError, match="EnotSearchOptimizer: bn_tune_dataloader must be an iterable.*got"):
        EnotSearchOptimizer(ss, optimizer, bn_tune_dataloader=bad)


def test_functional_search_step_with_an_empty_bn_batch_list() -> None:
    torch.manual_seed(0)
    ss = SearchSpaceModel(tiny_mobilenet())
    split = F.split_search_space(ss)
    optimizer = F.adam(0.1)
    state = F.search_init(split.buffers, split.logits, optimizer, F.random.key(0))
    batch = (torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,)))

    def loss_fn(output, batch):
        return nn.functional.cross_entropy(output, batch[1])

    with pytest.raises(ValueError, match="bn_tune ran on no batch"):
        F.search_step(F.make_apply(ss), optimizer, loss_fn, split.params, state, [batch], bn_tune_data=[[]])
