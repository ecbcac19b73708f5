"""Does keeping the important channels keep inherited weights useful?  Trains a small MobileNetV2 on
scikit-learn's digits, makes every block 50% (or --width) as wide with ``enot.autogeneration``, and
compares the test accuracy of that network (batch-norm statistics recalibrated on the train split,
then after one tuning epoch) when the channels kept are chosen by the importance criterion and when
they are chosen at random.

    python benchmarks/autogeneration_importance.py [--epochs 15] [--width 0.5] [--random-seeds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _torchvision_compat import define_torchvision_op_schemas  # noqa: E402

define_torchvision_op_schemas()
import torchvision  # noqa: E402

import enot.autogeneration._generate as generate_module  # noqa: E402
from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model  # noqa: E402
from enot.models import SearchSpaceModel  # noqa: E402
from enot.utils import tune_bn_stats  # noqa: E402


def data() -> tuple[TensorDataset, TensorDataset]:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    y = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return TensorDataset(x_train, y_train), TensorDataset(x_test, y_test)


def train(model: nn.Module, dataset: TensorDataset, epochs: int, lr: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()


@torch.no_grad()
def accuracy(model: nn.Module, dataset: TensorDataset) -> float:
    model.eval()
    x, y = dataset.tensors
    return (model(x).argmax(1) == y).float().mean().item()


def pruned(model: nn.Module, width: float, train_set: TensorDataset, tune_epochs: int) -> tuple[float, float, float]:
    """Accuracies of the all-``width`` network: as extracted, after BN recalibration, after tuning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generated = generate_pruned_search_variants_model(
            model, (TransformationParameters(width_mult=1.0), TransformationParameters(width_mult=width))
        )
    space = SearchSpaceModel(generated)
    network = space.get_network_by_indexes([1] * len(space.search_variants_containers))
    as_is = accuracy(network, TEST)
    tune_bn_stats(network, DataLoader(train_set, batch_size=64, shuffle=False), n_steps=20)
    recalibrated = accuracy(network, TEST)
    train(network, train_set, tune_epochs, 1e-3, seed=1)
    return as_is, recalibrated, accuracy(network, TEST)


def main() -> None:
    global TEST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument("--tune-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set, TEST = data()
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10, width_mult=0.5)
    start = time.perf_counter()
    train(model, train_set, args.epochs, 1e-2, seed=0)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; full model test accuracy "
          f"{accuracy(model, TEST):.4f} ({len(TEST)} test images)")
    model.eval()

    rows = [("importance (|gamma|, then filter L1)", pruned(copy.deepcopy(model), args.width, train_set, args.tune_epochs))]
    original_order = generate_module.channel_order
    random_rows = []
    for seed in range(args.random_seeds):
        g = torch.Generator().manual_seed(seed)
        generate_module.channel_order = lambda block, group, g=g: torch.randperm(group.size, generator=g).tolist()
        try:
            random_rows.append(pruned(copy.deepcopy(model), args.width, train_set, args.tune_epochs))
        finally:
            generate_module.channel_order = original_order
    print(f"every block at width {args.width}: test accuracy as extracted / after BN recalibration / after "
          f"{args.tune_epochs} tuning epoch(s)")
    print(f"  {rows[0][0]}: " + " / ".join(f"{a:.4f}" for a in rows[0][1]))
    for i in range(3):
        values = [r[i] for r in random_rows]
        print(f"  random channels, {len(values)} seeds, column {i + 1}: median {statistics.median(values):.4f}, "
              f"min {min(values):.4f}, max {max(values):.4f}")


TEST: TensorDataset

if __name__ == "__main__":
    main()
