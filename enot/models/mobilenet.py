"""`build_mobilenet`: a MobileNetV2-like search space built from op strings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from enot.models._container import SearchVariantsContainer
from enot.models._ops import parse_op

__all__ = ["MobileNetBaseHead", "MobileNetBaseStem", "build_mobilenet"]


class MobileNetBaseStem(nn.Module):
    """3x3 stride-2 conv + BN + ReLU6, then a depthwise-separable block (MobileNetV2's first layers)."""

    def __init__(self, in_channels: int = 3, stem_channels: int = 32, out_channels: int = 16) -> None:
        super().__init__()
        self.ops = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(stem_channels, stem_channels, 3, 1, 1, groups=stem_channels, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(stem_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class MobileNetBaseHead(nn.Module):
    """1x1 conv to ``last_channels`` + BN + ReLU6, global average pooling, dropout, linear classifier.

    Args:
        bottleneck_channels: Channels of the input (the last block's output).
        last_channels: Channels of the 1x1 conv before pooling.
        num_classes: Outputs of the classifier.
        dropout_rate: Dropout before the classifier.
    """

    def __init__(self, bottleneck_channels: int, last_channels: int = 1280, num_classes: int = 10,
                 dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(bottleneck_channels, last_channels, 1, bias=False), nn.BatchNorm2d(last_channels),
            nn.ReLU6(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv(x)).flatten(1)
        return self.classifier(self.dropout(x))


def _check_list(name: str, values: Sequence[int], length: int | None = None) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"build_mobilenet: {name} must be a non-empty list of positive ints, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"build_mobilenet: {name} has {len(values)} entries, blocks_out_channels has {length}")
    return values


def build_mobilenet(
    search_ops: Sequence[str],
    num_classes: int = 10,
    blocks_out_channels: Sequence[int] = (24, 32, 64, 96, 160, 320),
    blocks_count: Sequence[int] = (2, 2, 2, 1, 2, 1),
    blocks_stride: Sequence[int] = (2, 2, 2, 1, 2, 1),
    in_channels: int = 3,
    *,
    stem_channels: int = 32,
    stem_out_channels: int = 16,
    last_channels: int = 1280,
    dropout_rate: float = 0.0,
) -> nn.Sequential:
    """Builds a MobileNetV2-like model whose searchable blocks choose among ``search_ops``.

    Group ``g`` has ``blocks_count[g]`` searchable blocks with ``blocks_out_channels[g]`` output
    channels; its first block has stride ``blocks_stride[g]``.  Each block is a
    :class:`SearchVariantsContainer` with one candidate per op string.  Wrap the result in
    :class:`SearchSpaceModel` to search it.

    Returns:
        ``nn.Sequential(stem, block, ..., head)``.

    Raises:
        ValueError: On an unknown op string or inconsistent block lists.
    """
    search_ops = list(search_ops)
    if not search_ops:
        raise ValueError("build_mobilenet: search_ops must name at least one op")
    out_channels = _check_list("blocks_out_channels", blocks_out_channels)
    counts = _check_list("blocks_count", blocks_count, len(out_channels))
    strides = _check_list("blocks_stride", blocks_stride, len(out_channels))
    layers: list[nn.Module] = [MobileNetBaseStem(in_channels, stem_channels, stem_out_channels)]
    channels = stem_out_channels
    for width, count, stride in zip(out_channels, counts, strides):
        for i in range(count):
            s = stride if i == 0 else 1
            layers.append(SearchVariantsContainer([parse_op(op, channels, width, s) for op in search_ops]))
            channels = width
    layers.append(MobileNetBaseHead(channels, last_channels=last_channels, num_classes=num_classes,
                                    dropout_rate=dropout_rate))
    return nn.Sequential(*layers)
