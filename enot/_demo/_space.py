"""The demo's search space: a small MobileNetV2-like network for 8x8 digits, five choice blocks."""

from __future__ import annotations

from torch import nn

from enot.models import MobileNetBaseHead, SearchSpaceModel, SearchVariantsContainer, parse_op

OPS = ("MIB_k=3_t=3", "MIB_k=5_t=3", "MIB_k=3_t=6", "MIB_k=5_t=6", "conv1x1-skip")
# (out_channels, stride) of every choice block; 8x8 -> 4x4 -> 2x2.
BLOCKS = ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1))
STEM_CHANNELS = 16


def build_search_space(ops: tuple[str, ...] = OPS) -> SearchSpaceModel:
    """Stem (3x3 conv, stride 1), one container of ``ops`` per block of :data:`BLOCKS`, MobileNet head."""
    layers: list[nn.Module] = [
        nn.Sequential(nn.Conv2d(1, STEM_CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU6())
    ]
    channels = STEM_CHANNELS
    for width, stride in BLOCKS:
        layers.append(SearchVariantsContainer([parse_op(op, channels, width, stride) for op in ops]))
        channels = width
    layers.append(MobileNetBaseHead(channels, num_classes=10, last_channels=64))
    return SearchSpaceModel(nn.Sequential(*layers))
