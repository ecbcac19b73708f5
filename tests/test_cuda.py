"""Correctness of the CUDA code paths (run where a GPU is; skipped without one).

    python -m pytest -q -m cuda tests/test_cuda.py

1. Pretrain: facade and functional core on CUDA in float64, same seed, agree.
2. Fixed-latency search on CUDA: every sampled path and the validation pick are within the bound.
3. Measured latency ('time') on CUDA ranks a 7x7 conv with 256 channels above a 1x1 one.
"""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

import enot.functional as ef
from enot.latency import initialize_latency, max_latency, min_latency
from enot.models import SearchSpaceModel, SearchVariantsContainer, build_mobilenet
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _mobilenet_space() -> SearchSpaceModel:
    """The small MobileNet-like space of the benchmarks (32x32 RGB inputs, 10 classes)."""
    torch.manual_seed(0)
    model = build_mobilenet(
        ["MIB_k=3_t=6", "MIB_k=5_t=3", "MIB_k=7_t=6", "conv1x1-skip"], num_classes=10,
        blocks_out_channels=[16, 24, 32, 64], blocks_count=[1, 2, 2, 1], blocks_stride=[1, 2, 2, 1],
        in_channels=3, last_channels=256,
    )
    return SearchSpaceModel(model)


def test_pretrain_facade_equals_functional_on_cuda() -> None:
    device = torch.device("cuda")
    space = _mobilenet_space().to(device).double()
    x = torch.randn(8, 3, 32, 32, device=device, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), device=device)
    space.initialize_output_distribution_optimization(x)
    core = copy.deepcopy(space)
    enot_opt = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.05, momentum=0.9), seed=3)
    trees = ef.split_search_space(core)
    pure = ef.sgd(0.05, momentum=0.9)
    state = ef.pretrain_init(trees.params, trees.buffers, pure, ef.random.key(3))
    apply = ef.make_apply(core)
    for _ in range(3):
        enot_opt.zero_grad()
        enot_opt.step(lambda: Fn.cross_entropy(space(x), y).backward())
        state, _ = ef.pretrain_step(apply, pure, lambda o, b: Fn.cross_entropy(o, b[1]), state, [(x, y)])
    params = dict(space.named_parameters())
    difference = max(float((params[n].detach() - v).abs().max()) for n, v in state.params.items())
    assert difference < 1e-10


def test_fixed_latency_search_stays_within_the_bound_on_cuda() -> None:
    device = torch.device("cuda")
    space = _mobilenet_space().to(device)
    x = torch.randn(16, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (16,), device=device)
    initialize_latency("mmac", space, x[:2])
    lo, hi = min_latency(space), max_latency(space)
    bound = lo + 0.3 * (hi - lo)
    opt = EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(space.architecture_parameters(), lr=0.05), bound)
    for _ in range(20):
        opt.zero_grad()
        opt.step(lambda: opt.modify_loss(Fn.cross_entropy(space(x), y)).backward())
        assert float(space.forward_latency) <= bound
    opt.prepare_validation_model()
    assert float(space.forward_latency) <= bound


def test_time_latency_ranks_a_big_conv_above_a_small_one_on_cuda() -> None:
    device = torch.device("cuda")
    model = nn.Sequential(SearchVariantsContainer([nn.Conv2d(256, 256, 7, padding=3), nn.Conv2d(256, 256, 1)]))
    space = SearchSpaceModel(model).to(device)
    x = torch.randn(8, 256, 28, 28, device=device)
    runs = [initialize_latency("time", space, x).operations_latencies[0] for _ in range(5)]
    assert statistics.median(r[0] for r in runs) > statistics.median(r[1] for r in runs)
