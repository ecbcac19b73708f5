"""Bias of the search estimators against the exact gradient of the expected loss, by enumeration.

For each toy of ``tests/_estimator_toys.py`` (the issue's scale toy, a 2x2 additive case under a
latency bound, three composed containers with cross-entropy and MSE, with and without a bound) it
averages ``--draws`` single-draw estimates of each estimator and prints the largest absolute
difference from the exact gradient, in absolute terms and in standard errors (z), with the time
per draw.

    python benchmarks/estimator_bias.py [--draws 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _estimator_toys import all_toys, estimator_draws, exact_gradient  # noqa: E402

import enot.functional as ef  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {args.draws} draws per toy and estimator, float64")
    print("| toy | exact max | " + " | ".join(f"{e} abs bias (z)" for e in ef.ESTIMATORS) + " |")
    for toy in all_toys():
        exact = torch.cat(exact_gradient(toy))
        cells = []
        for estimator in ef.ESTIMATORS:
            start = time.perf_counter()
            draws = estimator_draws(toy, estimator, args.draws)
            ms = (time.perf_counter() - start) / args.draws * 1e3
            mean, se = draws.mean(0), draws.std(0) / args.draws**0.5
            bias = (mean - exact).abs()
            z = bias / se.clamp_min(1e-12)
            cells.append(f"{float(bias.max()):.4f} ({float(z.max()):.1f}; {ms:.1f} ms/draw)")
        print(f"| {toy.name} | {float(exact.abs().max()):.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
