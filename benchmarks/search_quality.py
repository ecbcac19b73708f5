"""Search quality on scikit-learn's digits: the found architecture against random ones under the same bound.

Pretrains a small MobileNet-like search space on digits (8x8 grey images), measures its latency
('mmac'), searches with `EnotFixedLatencySearchOptimizer` under a bound halfway between the
fastest and the slowest architecture, then fine-tunes the found architecture and 10 random
architectures drawn uniformly among those that meet the same bound (all from the supernet's
weights, the same epochs, optimizer and seed), and prints their test accuracies and latencies.

    python benchmarks/search_quality.py [--pretrain-epochs 30] [--search-epochs 20] [--tune-epochs 5]
                                        [--estimator two_path|first_order]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as Fn
from sklearn.datasets import load_digits

import enot.functional as ef
from enot.latency import initialize_latency
from enot.models import SearchSpaceModel, build_mobilenet
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer

OPS = ["MIB_k=3_t=6", "MIB_k=5_t=3", "MIB_k=3_t=1", "conv1x1-skip"]


def _data(seed: int = 0):
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - x.mean()) / x.std()
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    return (x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), (x[1300:], y[1300:])


def _batches(x, y, size, seed):
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return [(x[perm[i : i + size]], y[perm[i : i + size]]) for i in range(0, len(y), size)]


def _accuracy(net, x, y) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def _tune(net, train, test, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(epochs):
        net.train()
        for xb, yb in _batches(*train, 64, 1000 + epoch):
            opt.zero_grad()
            Fn.cross_entropy(net(xb), yb).backward()
            opt.step()
    return _accuracy(net, *test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--search-epochs", type=int, default=20)
    parser.add_argument("--tune-epochs", type=int, default=5)
    parser.add_argument("--random", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=0.5, help="bound = min + fraction * (max - min)")
    parser.add_argument("--estimator", default="two_path", choices=list(ef.ESTIMATORS))
    args = parser.parse_args()
    train, val, test = _data()
    torch.manual_seed(0)
    model = build_mobilenet(OPS, num_classes=10, blocks_out_channels=[16, 24, 32], blocks_count=[2, 2, 2],
                            blocks_stride=[1, 2, 1], in_channels=1, stem_channels=16, stem_out_channels=16,
                            last_channels=64)
    space = SearchSpaceModel(model)
    space.initialize_output_distribution_optimization(train[0][:128])
    pre = EnotPretrainOptimizer(space, torch.optim.Adam(space.model_parameters(), lr=3e-3), sampler="fair")
    for epoch in range(args.pretrain_epochs):
        space.train()
        for xb, yb in _batches(*train, 64, epoch):
            pre.zero_grad()
            pre.step(lambda: Fn.cross_entropy(space(xb), yb).backward())
    container = initialize_latency("mmac", space, train[0][:8])
    table = container.table()
    lo, hi = float(ef.min_latency(table)), float(ef.max_latency(table))
    bound = lo + args.fraction * (hi - lo)
    print(f"{len(table.operations)} containers x {len(OPS)} ops {OPS}; mmac min {lo:.3f} max {hi:.3f} bound {bound:.3f}")

    bn_loader = _batches(*train, 64, 99)
    search = EnotFixedLatencySearchOptimizer(
        space, torch.optim.Adam(space.architecture_parameters(), lr=0.05), bound,
        bn_tune_dataloader=bn_loader, bn_tune_batches=2, bn_validation_tune_batches=10, estimator=args.estimator,
    )
    for epoch in range(args.search_epochs):
        for xb, yb in _batches(*val, 32, 500 + epoch):
            search.zero_grad()
            search.step(lambda: search.modify_loss(Fn.cross_entropy(space(xb), yb)).backward())
    found = search.prepare_validation_model()
    probs = [round(float(p.max()), 2) for p in space.architecture_probabilities]
    print(f"found {found} ({[OPS[k] for k in found]}), max probabilities {probs}")

    keys = ef.random.split(ef.random.key(123), args.random)
    uniform = [torch.zeros(len(OPS)) for _ in table.operations]
    randoms = [ef.sample_feasible_architecture(k, uniform, table, bound) for k in keys]
    rows = []
    for name, arch in [("found", found)] + [(f"random {i}", a) for i, a in enumerate(randoms)]:
        net = space.get_network_by_indexes(arch)
        acc = _tune(net, train, test, args.tune_epochs, seed=0)
        latency = float(ef.architecture_latency(arch, table))
        rows.append((name, arch, latency, acc))
        print(f"{name:10s} {arch}  mmac {latency:7.3f} ({latency / bound:5.1%} of bound)  test accuracy {acc:.4f}")
    accs = [r[3] for r in rows[1:]]
    rank = 1 + sum(a > rows[0][3] for a in accs)
    print(f"found: accuracy {rows[0][3]:.4f}, latency {rows[0][2]:.3f} ({rows[0][2] / bound:.1%} of bound); "
          f"random: mean accuracy {statistics.mean(accs):.4f}, best {max(accs):.4f}, worst {min(accs):.4f}, "
          f"mean latency {statistics.mean(r[2] for r in rows[1:]):.3f}; found ranks {rank} of {len(rows)}")
    skips = sum(OPS[k] == "conv1x1-skip" for k in found)
    print(f"skip connections in the found architecture: {skips} of {len(found)}")


if __name__ == "__main__":
    main()
