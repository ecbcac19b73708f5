"""Small search spaces shared by tests and property tests."""

from __future__ import annotations

import torch
from torch import nn

from enot.models import SearchVariantsContainer, build_mobilenet


def tiny_mobilenet(ops=("MIB_k=3_t=3", "MIB_k=5_t=2", "conv1x1-skip"), num_classes: int = 10) -> nn.Module:
    return build_mobilenet(
        list(ops), num_classes=num_classes, blocks_out_channels=[8, 16], blocks_count=[2, 1],
        blocks_stride=[1, 2], in_channels=1, stem_channels=8, stem_out_channels=8, last_channels=32,
    )


class Nested(nn.Module):
    """Containers at several depths, with different numbers of candidates, one inside a candidate."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        inner = SearchVariantsContainer([nn.Conv2d(4, 4, 3, padding=1), nn.Identity()])
        self.blocks = nn.ModuleDict({
            "a": SearchVariantsContainer([
                nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)),
                nn.Sequential(inner, nn.ReLU()),
                nn.Conv2d(4, 4, 5, padding=2),
            ]),
        })
        self.b = SearchVariantsContainer([nn.Tanh(), nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.blocks["a"](x)
        return self.head(self.b(x) + x)
