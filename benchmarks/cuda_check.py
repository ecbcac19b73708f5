"""Correctness checks of the CUDA code paths (run on a machine with a GPU; prints, never asserts).

    python benchmarks/cuda_check.py

1. Pretrain: facade and functional core on CUDA in float64, same seed: max weight difference.
2. Fixed-latency search on CUDA: every sampled architecture and the validation pick within the bound.
3. Measured latency ('time') on CUDA: a 7x7 conv with 256 channels against a 1x1, five repeats.
"""

from __future__ import annotations

import copy
import statistics

import torch
import torch.nn.functional as Fn
from torch import nn

import enot.functional as ef
from enot.latency import initialize_latency, min_latency, max_latency
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer

from _measure import mobilenet_space


def pretrain_equivalence(device: torch.device) -> float:
    space = mobilenet_space().to(device).double()
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
    return max(float((params[n].detach() - v).abs().max()) for n, v in state.params.items())


def fixed_latency_search(device: torch.device) -> tuple[float, float, int, list[int], float]:
    space = mobilenet_space().to(device)
    x = torch.randn(16, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (16,), device=device)
    initialize_latency("mmac", space, x[:2])
    lo, hi = min_latency(space), max_latency(space)
    bound = lo + 0.3 * (hi - lo)
    opt = EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(space.architecture_parameters(), lr=0.05), bound)
    over = 0
    for _ in range(20):
        opt.zero_grad()
        opt.step(lambda: opt.modify_loss(Fn.cross_entropy(space(x), y)).backward())
        over += float(space.forward_latency) > bound
    arch = opt.prepare_validation_model()
    return bound, float(space.forward_latency), over, arch, hi


def measured_latency(device: torch.device) -> list[tuple[float, float]]:
    model = nn.Sequential(SearchVariantsContainer([nn.Conv2d(256, 256, 7, padding=3), nn.Conv2d(256, 256, 1)]))
    space = SearchSpaceModel(model).to(device)
    x = torch.randn(8, 256, 28, 28, device=device)
    runs = []
    for _ in range(5):
        container = initialize_latency("time", space, x)
        runs.append(tuple(container.operations_latencies[0]))
    return runs


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print(f"1. pretrain facade vs functional on CUDA, float64, 3 steps: max |difference| = {pretrain_equivalence(device):.3e}")
    bound, chosen, over, arch, hi = fixed_latency_search(device)
    print(f"2. fixed-latency search on CUDA: bound {bound:.4f} (max {hi:.4f}); sampled paths above it: {over}/20; "
          f"validation pick {arch} at {chosen:.4f} ({chosen / bound:.1%} of the bound)")
    runs = measured_latency(device)
    seven, one = [r[0] for r in runs], [r[1] for r in runs]
    print(f"3. 'time' on CUDA, 5 runs: 7x7 {statistics.median(seven):.4f} ms (range {min(seven):.4f}..{max(seven):.4f}), "
          f"1x1 {statistics.median(one):.4f} ms (range {min(one):.4f}..{max(one):.4f}); 7x7 slower in "
          f"{sum(a > b for a, b in runs)}/5 runs")


if __name__ == "__main__":
    main()
