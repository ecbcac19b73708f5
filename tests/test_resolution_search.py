"""enot.experimental.resolution_search: resizing strategies and the resolution searcher under a latency bound."""

from __future__ import annotations

import pytest
import torch

from enot import functional as F
from enot.experimental.resolution_search import (
    ConstantResolutionStrategy,
    PretrainResolutionStrategy,
    ResolutionSearcherWithFixedLatencyIterator,
)
from enot.latency import current_latency, initialize_latency, min_latency, reset_latency
from enot.models import SearchSpaceModel
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer
from tests.spaces import tiny_mobilenet


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(threads)


def _loader(n: int = 2, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 1, size, size, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(n)]


def test_pretrain_strategy_resizes_each_batch_within_the_range_and_is_seeded():
    loader = _loader(20)
    sizes = [tuple(x.shape[-2:]) for x, _ in PretrainResolutionStrategy(8, 12)(loader)]
    assert all(8 <= h == w <= 12 for h, w in sizes) and len(set(sizes)) > 2
    assert sizes == [tuple(x.shape[-2:]) for x, _ in PretrainResolutionStrategy(8, 12)(loader)]  # same seed
    stepped = {x.shape[-1] for x, _ in PretrainResolutionStrategy(8, 16, resolution_step=4, seed=3)(loader)}
    assert stepped <= {8, 12, 16}
    labels = [y for _, y in PretrainResolutionStrategy(8, 12)(loader)]
    assert all(torch.equal(a, b) for a, b in zip(labels, [y for _, y in loader]))


def test_constant_strategy_resizes_and_keeps_the_batch_when_the_size_matches():
    x, y = _loader(1)[0]
    (out, labels), = list(ConstantResolutionStrategy(8)([(x, y)]))
    assert out.shape == (4, 1, 8, 8) and labels is y
    # A constant image stays constant under resizing: the resize is an interpolation, not a crop.
    flat = torch.full((2, 3, 16, 16), 0.25)
    assert torch.allclose(next(ConstantResolutionStrategy((6, 10))([flat])), torch.full((2, 3, 6, 10), 0.25))
    (same, _), = list(ConstantResolutionStrategy(16)([(x, y)]))
    assert same is x


@pytest.mark.parametrize("make", [lambda: PretrainResolutionStrategy(10, 5), lambda: PretrainResolutionStrategy(0, 5),
                                  lambda: ConstantResolutionStrategy(-1), lambda: ConstantResolutionStrategy((2, 2, 2)),
                                  lambda: PretrainResolutionStrategy(2, 5, resolution_step=0)])
def test_strategies_reject_bad_resolutions(make):
    with pytest.raises(ValueError):
        make()


def test_strategy_rejects_non_image_batches():
    with pytest.raises(ValueError, match="N x C x H x W"):
        list(ConstantResolutionStrategy(4)([(torch.zeros(3, 4), torch.zeros(3))]))


def _space() -> SearchSpaceModel:
    torch.manual_seed(0)
    return SearchSpaceModel(tiny_mobilenet())


def _searcher(space, bound, low=6, high=24, tolerance=3, lr=0.5):
    user = torch.optim.Adam(space.architecture_parameters(), lr=lr)
    opt = EnotFixedLatencySearchOptimizer(space, user, max_latency_value=bound)  # no latency yet: allowed
    return opt, ResolutionSearcherWithFixedLatencyIterator(opt, _loader(), "mmac", low, high, tolerance)


def _flat(container) -> list[float]:
    return [v for row in container.operations_latencies for v in row]


def _min_latency_at(space, resolution) -> float:
    return min_latency(initialize_latency("mmac", space, (torch.zeros(1, 1, resolution, resolution),)))


def test_searcher_recomputes_latency_resets_state_and_ends_on_the_best_resolution_within_the_bound():
    space = _space()
    bound = _min_latency_at(space, 12) * 1.02
    assert _min_latency_at(space, 13) > bound  # resolutions above 12 cannot meet it (latency grows with size)
    reset_latency(space)  # as in ENOT's tutorial: the optimizer is built before the space has latency
    start = {k: v.clone() for k, v in space.state_dict().items()}
    opt, searcher = _searcher(space, bound, low=4, high=16, tolerance=2)
    peak = 8  # a unimodal metric with its maximum at resolution 8

    tried = []
    for resolution, strategy in searcher:
        tried.append(resolution)
        # Each resolution starts from the same state: weights, buffers, logits, optimizer.
        assert all(torch.equal(v, start[k]) for k, v in space.state_dict().items())
        assert opt.optimizer.state_dict()["state"] == {}
        # The latency applied is the one at this resolution, and the bound is reachable there.
        if len(tried) == 1:
            expected = initialize_latency("mmac", _space(), (torch.zeros(1, 1, resolution, resolution),))
            assert _flat(space.get_latency_container()) == pytest.approx(_flat(expected))
        assert min_latency(space) <= bound
        x = next(strategy(_loader(1)))[0]
        assert x.shape[-2:] == (resolution, resolution)
        for _ in range(2):  # a real search step changes logits and optimizer state
            opt.step(lambda: opt.modify_loss(space(x).logsumexp(1).mean()).backward())
        opt.prepare_validation_model()
        assert current_latency(space) <= bound
        searcher.set_resolution_target_metric(-float((resolution - peak) ** 2))

    assert len(tried) == len(set(tried)) and len(tried) < 12 - 4 + 1  # fewer runs than trying every one
    assert 4 <= min(tried) and max(tried) <= 12
    assert searcher.best_resolution == max(searcher.metrics, key=searcher.metrics.get)
    assert abs(searcher.best_resolution - peak) <= searcher.resolution_tolerance
    # The space ends on the best resolution's latency and architecture, within the bound.
    assert space.forward_architecture == searcher.best_architecture
    assert current_latency(space) <= bound
    best = searcher.best_resolution
    expected = initialize_latency("mmac", _space(), (torch.zeros(1, 1, best, best),))
    assert _flat(space.get_latency_container()) == pytest.approx(_flat(expected))
    table = expected.table(dtype=torch.float64)
    assert float(F.architecture_latency(searcher.best_architecture, table)) <= bound


def test_searcher_needs_a_metric_per_resolution_and_a_reachable_bound():
    space = _space()
    _, searcher = _searcher(space, bound=_min_latency_at(space, 8) * 2, low=6, high=8)
    iterator = iter(searcher)
    next(iterator)
    with pytest.raises(RuntimeError, match="set_resolution_target_metric"):
        next(iterator)
    with pytest.raises(RuntimeError, match="no resolution has a metric"):
        searcher.best_resolution

    space = _space()
    bound = _min_latency_at(space, 6) * 0.9
    reset_latency(space)
    _, searcher = _searcher(space, bound, low=6, high=8)
    with pytest.raises(ValueError, match="even at min_resolution=6: the minimum latency there is"):
        next(iter(searcher))

    space = _space()
    _, searcher = _searcher(space, bound=1e9, low=6, high=6)
    with pytest.raises(RuntimeError, match="no resolution is waiting"):
        searcher.set_resolution_target_metric(1.0)
    resolution, _ = next(iter(searcher))
    assert resolution == 6
    with pytest.raises(ValueError, match="finite number"):
        searcher.set_resolution_target_metric(float("nan"))
    with pytest.raises(TypeError, match="EnotFixedLatencySearchOptimizer"):
        ResolutionSearcherWithFixedLatencyIterator(EnotSearchOptimizer(space, torch.optim.SGD(
            space.architecture_parameters(), lr=0.1)), _loader(), "mmac", 6, 24, 3)
    with pytest.raises(ValueError, match="min_resolution=30 is above"):
        _searcher(space, 1e9, low=30, high=24)
