"""Measurement helpers shared by the benchmark scripts (wall time and peak memory of a callable)."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

import enot.functional as ef
from enot.models import SearchSpaceModel, build_mobilenet

OPS = ["MIB_k=3_t=6", "MIB_k=5_t=3", "MIB_k=7_t=6", "conv1x1-skip"]


def mobilenet_space(ops: list[str] = OPS, seed: int = 0) -> SearchSpaceModel:
    """The small MobileNet-like space of the benchmarks (32x32 RGB inputs, 10 classes)."""
    torch.manual_seed(seed)
    model = build_mobilenet(
        ops, num_classes=10, blocks_out_channels=[16, 24, 32, 64], blocks_count=[1, 2, 2, 1],
        blocks_stride=[1, 2, 2, 1], in_channels=3, last_channels=256,
    )
    return SearchSpaceModel(model)


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silences the profiler's start/stop lines (written by the C++ side to file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of bytes allocated by PyTorch on the CPU while ``fn`` runs, above the level at its start."""
    with _quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")),
        key=lambda e: e.start_ns(),
    )
    level = peak = 0
    for event in events:
        level += event.nbytes()
        peak = max(peak, level)
    return peak


def median_ratio(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """``(median ours, median reference, median of per-pair ratios)``."""
    ours = statistics.median(p[0] for p in pairs)
    ref = statistics.median(p[1] for p in pairs)
    return ours, ref, statistics.median(p[0] / p[1] for p in pairs)


def plain_step(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    optimizer.step()


def selection_ms(n_containers: int, correlated: bool, fractions=(0.1, 0.3, 0.5, 0.8), repeats: int = 5) -> list[float]:
    """Median milliseconds of exact latency-bounded selection on a random ``n_containers`` x 10 table,
    one figure per bound (``min + fraction * (max - min)``); ``correlated``: probability grows with latency."""
    g = torch.Generator().manual_seed(n_containers)
    lat = [torch.rand(10, generator=g, dtype=torch.float64) * 10 for _ in range(n_containers)]
    table = ef.latency_table(1.0, lat)
    logits = [(l * 0.3 + 0.05 * torch.randn(10, generator=g, dtype=torch.float64)) if correlated
              else torch.randn(10, generator=g, dtype=torch.float64) * 2 for l in lat]
    lo, hi = float(ef.min_latency(table)), float(ef.max_latency(table))
    times = []
    for frac in fractions:
        bound = lo + (hi - lo) * frac
        times.append(statistics.median(seconds(lambda: ef.select_architecture(logits, table, bound)) for _ in range(repeats)) * 1e3)
    return times
