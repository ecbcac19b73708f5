"""The pure batch-norm tuning function and `tune_bn_stats` built on it."""

from __future__ import annotations

import torch
from torch import nn

import enot.functional as ef
from enot.utils import tune_bn_stats


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()


def _batches(n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 3, generator=g, dtype=torch.float64) * 2 + 1, torch.zeros(8)) for _ in range(n)]


def _by_hand(net: nn.Module, batches) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        feats = [net[0](x) for x, _ in batches]
    mean = torch.stack([f.mean(0) for f in feats]).mean(0)
    var = torch.stack([f.var(0, unbiased=True) for f in feats]).mean(0)
    return mean, var


def test_bn_tune_equals_cumulative_mean_and_variance_by_hand():
    net, batches = _net(), _batches()
    params = {n: p.detach() for n, p in net.named_parameters()}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    before = {n: b.clone() for n, b in buffers.items()}
    new = ef.bn_tune(net, params, buffers, batches)
    mean, var = _by_hand(net, batches)
    torch.testing.assert_close(new["1.running_mean"], mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(new["1.running_var"], var, rtol=0, atol=1e-12)
    assert int(new["1.num_batches_tracked"]) == len(batches)
    for name, value in before.items():  # inputs untouched, module's own buffers untouched
        assert torch.equal(buffers[name], value)
        assert torch.equal(dict(net.named_buffers())[name], value)
    assert net.training and net[1].momentum == 0.1


def test_bn_tune_max_batches_and_path_only(nested_space):
    ss = nested_space
    trees = ef.split_search_space(ss)
    batches = [(torch.randn(2, 1, 6, 6),) for _ in range(3)]
    arch = [0, 0, 0]  # container a: conv+bn; inner off the path; b: tanh
    new = ef.bn_tune(ss, trees.params, trees.buffers, batches, architecture=arch, max_batches=2)
    changed = {n for n in new if new[n] is not trees.buffers[n]}
    assert changed == set(ef.batch_norm_buffer_names(ss, arch))
    assert "original_model.b.search_variants.1.1.running_mean" not in changed
    assert int(new["original_model.stem.1.num_batches_tracked"]) == 2


def test_tune_bn_stats_uses_the_pure_function():
    net, batches = _net(), _batches(6)
    expected = ef.bn_tune(net, dict(net.named_parameters()), dict(net.named_buffers()), batches[:3])
    tune_bn_stats(net, batches, n_steps=3)
    for name, value in net.named_buffers():
        assert torch.equal(value, expected[name])
    mean, _ = _by_hand(net, batches[:3])
    torch.testing.assert_close(net[1].running_mean, mean, rtol=0, atol=1e-12)


def test_tune_bn_stats_epochs_and_momentum_kept():
    net, batches = _net(), _batches(2)
    tune_bn_stats(net, batches, n_steps=5, epochs=2, set_momentums_none=False)
    assert int(net[1].num_batches_tracked) == 4
    assert net[1].momentum == 0.1


def test_cached_statistics_are_the_exact_average_over_the_batches_seen(mobilenet_space):
    """bn_scheme='cached': refining on a new batch equals tuning from scratch on all batches seen;
    at the target the statistics are reused unchanged; least recently used entries are dropped."""
    ss = mobilenet_space.double()
    trees = ef.split_search_space(ss)
    g = torch.Generator().manual_seed(3)
    items = [(torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), 0) for _ in range(3)]
    arch = [1] * len(ss.layout.n_choices)
    names = ef.batch_norm_buffer_names(ss, arch)
    assert names
    first, cache = ef.cached_tuned_buffers(ss, trees.params, trees.buffers, arch, items[:1], None, target=2)
    second, cache = ef.cached_tuned_buffers(ss, trees.params, trees.buffers, arch, items[1:2], cache, target=2)
    both = ef.bn_tune(ss, trees.params, trees.buffers, items[:2], architecture=arch)
    for n in names:
        assert torch.allclose(second[n], both[n], rtol=1e-12, atol=1e-14), n
    assert not all(torch.equal(first[n], second[n]) for n in names)
    third, cache = ef.cached_tuned_buffers(ss, trees.params, trees.buffers, arch, items[2:], cache, target=2)
    assert all(torch.equal(third[n], second[n]) for n in names) and cache[tuple(arch)].batches == 2
    other = [0] * len(arch)
    _, cache = ef.cached_tuned_buffers(ss, trees.params, trees.buffers, other, items[:1], cache, target=2, cache_size=1)
    assert list(cache) == [tuple(other)]
    for name, value in trees.buffers.items():  # inputs never mutated
        assert torch.equal(value, dict(ss.named_buffers())[name])
