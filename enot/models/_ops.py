"""Ready-made searchable operations and the op-string parser of `build_mobilenet`."""

from __future__ import annotations

import torch
from torch import nn

from enot.functional.support import check_int
from enot.models._registry import build_searchable_op, register_searchable_op

__all__ = ["SearchableFuseableSkipConv", "SearchableMobileInvertedBottleneck", "parse_op"]


def _check_positive(op: str, **values: int) -> None:
    for name, value in values.items():
        check_int(value, name, minimum=1, where=f"{op}: ")


@register_searchable_op("MIB", {"k": ("kernel_size", int), "t": ("expand_ratio", int)})
class SearchableMobileInvertedBottleneck(nn.Module):
    """MobileNetV2 inverted bottleneck: 1x1 expansion, depthwise ``kernel_size`` conv, 1x1 projection.

    Residual when ``stride == 1`` and ``in_channels == out_channels``.  With ``expand_ratio == 1``
    the expansion conv is omitted.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, expand_ratio: int = 6) -> None:
        super().__init__()
        _check_positive("SearchableMobileInvertedBottleneck", in_channels=in_channels, out_channels=out_channels,
                        kernel_size=kernel_size, stride=stride, expand_ratio=expand_ratio)
        if kernel_size % 2 == 0:
            raise ValueError(f"SearchableMobileInvertedBottleneck: kernel_size must be odd, got {kernel_size}")
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.ops = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ops(x)
        return x + out if self.use_residual else out


@register_searchable_op("conv1x1-skip")
class SearchableFuseableSkipConv(nn.Module):
    """Identity when shapes allow (``stride == 1``, equal channels), else a 1x1 conv + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        _check_positive("SearchableFuseableSkipConv", in_channels=in_channels, out_channels=out_channels, stride=stride)
        if stride == 1 and in_channels == out_channels:
            self.ops = nn.Identity()
        else:
            self.ops = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


def parse_op(op: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Builds the operation named by an op string (``'MIB_k=3_t=6'``, ``'conv1x1-skip'`` or a
    registered one, see :func:`enot.models.register_searchable_op`)."""
    return build_searchable_op(op, in_channels, out_channels, stride)
