"""Cost of one search step, and of exact latency-bounded selection.

1. Search-step time over the time of one forward+backward of the single extracted path the step
   sampled (same batch, interleaved in the same run), for each estimator (``two_path``, the default,
   and ``first_order``), without batch-norm tuning and with it at the documented default
   (``bn_tune_batches=10`` batches of the same size per step once a ``bn_tune_dataloader`` is given),
   and for ``EnotFixedLatencySearchOptimizer`` (restricted sampling).  The ``bn_scheme="cached"`` rows
   tune at most one new batch per side per step (statistics kept per architecture); on this large
   space the repeated steps rarely revisit an architecture, so they show that scheme's cost before
   its statistics are reused.  Search time over a whole search (fresh against cached) is printed by
   ``benchmarks/search_quality.py``, with the share of distinct architectures drawn.
2. `enot.functional.select_architecture` time for 20x10 and 50x10 tables (random logits, and the
   harder case where probability grows with latency), over several bounds.  Target: 20x10 < 10 ms.

    python benchmarks/search_step.py [--repeats 15] [--batch 64] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as Fn
from _measure import median_ratio, mobilenet_space, seconds, selection_ms

from enot.latency import SearchSpaceLatencyContainer
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer

BN_TUNE_BATCHES = 10  # EnotSearchOptimizer's default


def _step_ratios(estimator: str, tune: bool | str, fixed: bool, batch: int, repeats: int) -> tuple[float, float, float]:
    space = mobilenet_space()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    space.initialize_output_distribution_optimization(x)
    n = space.layout.n_choices
    lat = [[float(1 + k) for k in range(c)] for c in n]
    space.apply_latency_container(SearchSpaceLatencyContainer("mmac", 1.0, lat))
    user = torch.optim.Adam(space.architecture_parameters(), lr=0.05)
    bn_data = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))) for _ in range(BN_TUNE_BATCHES)]
    options = dict(estimator=estimator, bn_tune_dataloader=bn_data if tune else None, bn_tune_batches=BN_TUNE_BATCHES,
                   bn_scheme=tune if isinstance(tune, str) else "fresh")
    if fixed:
        bound = 1.0 + sum(c for c in n) * 0.6
        opt = EnotFixedLatencySearchOptimizer(space, user, bound, **options)
    else:
        opt = EnotSearchOptimizer(space, user, **options)

    def closure():
        Fn.cross_entropy(space(x), y).backward()

    pairs = []
    for r in range(repeats + 2):
        t_search = seconds(lambda: (opt.zero_grad(), opt.step(closure)))
        net = space.get_network_by_indexes(opt.last_sample.architecture)
        net.train()

        def plain():
            net.zero_grad()
            Fn.cross_entropy(net(x), y).backward()

        plain()  # warm the extracted network once
        t_plain = seconds(plain)
        if r >= 2:
            pairs.append((t_search, t_plain))
    return median_ratio(pairs)


ROWS = [  # (estimator, batch-norm tuning (True: the default scheme "fresh", or a bn_scheme), fixed latency)
    ("two_path", False, False),
    ("first_order", False, False),
    ("two_path", True, False),
    ("first_order", True, False),
    ("two_path", "cached", False),
    ("first_order", "cached", False),
    ("two_path", False, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 32x32 inputs")
    for estimator, tune, fixed in ROWS:
        ours, ref, ratio = _step_ratios(estimator, tune, fixed, args.batch, args.repeats)
        name = (("fixed-latency " if fixed else "") + f"step {estimator}" + (f", BN tune {BN_TUNE_BATCHES}" if tune else "")
                + (f" {tune}" if isinstance(tune, str) else ""))
        print(f"{name:34s} {ours * 1e3:8.1f} ms  single-path fwd+bwd {ref * 1e3:8.1f} ms  ratio {ratio:.2f}")
    for n in (20, 50):
        for correlated in (False, True):
            ms = selection_ms(n, correlated)
            kind = "p grows with latency" if correlated else "random logits"
            print(f"selection {n}x10 ({kind:20s}) bounds at 10/30/50/80%: " + " ".join(f"{t:6.1f}" for t in ms)
                  + f" ms  (max {max(ms):.1f} ms)")


if __name__ == "__main__":
    main()
