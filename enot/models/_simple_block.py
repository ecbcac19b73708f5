"""`build_simple_block_model`: a plain stack of searchable blocks (no stem, no head)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from enot.models._container import SearchVariantsContainer
from enot.models._registry import build_searchable_op

__all__ = ["build_simple_block_model", "init_weights_kaiming_normal"]


def _positive_ints(name: str, values: Sequence[int], length: int | None = None) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"build_simple_block_model: {name} must be a non-empty list of positive ints, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"build_simple_block_model: {name} has {len(values)} entries, blocks_out_channels has {length}")
    return values


def init_weights_kaiming_normal(model: nn.Module) -> nn.Module:
    """Initialises ``model`` in place as torchvision's MobileNetV2 does, and returns it.

    Convolutions: Kaiming normal (``fan_out``), zero bias; batch and group norms: weight 1, bias 0;
    linear layers: normal(0, 0.01), zero bias.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def build_simple_block_model(
    in_channels: int,
    search_ops: Sequence[str],
    blocks_out_channels: Sequence[int],
    blocks_count: Sequence[int],
    blocks_stride: Sequence[int],
    width_multiplier: float = 1.0,
    min_channels: int = 8,
    init_weights_kn: bool = True,
) -> nn.Sequential:
    """A stack of searchable blocks: the body of a network whose stem and head are the user's.

    Group ``g`` has ``blocks_count[g]`` blocks with ``max(min_channels, round(blocks_out_channels[g]
    * width_multiplier))`` output channels; its first block has stride ``blocks_stride[g]``.  Each
    block is a :class:`SearchVariantsContainer` with one candidate per op string of ``search_ops``
    (``'MIB_k=3_t=6'``, ``'conv1x1-skip'`` or ops added with :func:`register_searchable_op`).

    Args:
        in_channels: Channels of the input.
        search_ops: Op strings, one candidate each in every block.
        blocks_out_channels, blocks_count, blocks_stride: One entry per group of blocks.
        width_multiplier: Scales every group's output channels.
        min_channels: Lower bound of a block's output channels after scaling.
        init_weights_kn: Initialise the weights with :func:`init_weights_kaiming_normal`.

    Returns:
        ``nn.Sequential`` of the containers; its output has the last group's (scaled) channels.

    Raises:
        ValueError: On an unknown op string, inconsistent block lists or a non-positive multiplier.
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"build_simple_block_model: in_channels must be a positive int, got {in_channels!r}")
    search_ops = list(search_ops)
    if not search_ops:
        raise ValueError("build_simple_block_model: search_ops must name at least one op")
    if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float)) or not width_multiplier > 0:
        raise ValueError(f"build_simple_block_model: width_multiplier must be a positive number, got {width_multiplier!r}")
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"build_simple_block_model: min_channels must be a positive int, got {min_channels!r}")
    out_channels = _positive_ints("blocks_out_channels", blocks_out_channels)
    counts = _positive_ints("blocks_count", blocks_count, len(out_channels))
    strides = _positive_ints("blocks_stride", blocks_stride, len(out_channels))
    blocks: list[nn.Module] = []
    channels = in_channels
    for width, count, stride in zip(out_channels, counts, strides):
        width = max(min_channels, int(round(width * width_multiplier)))
        for i in range(count):
            s = stride if i == 0 else 1
            blocks.append(SearchVariantsContainer([build_searchable_op(op, channels, width, s) for op in search_ops]))
            channels = width
    model = nn.Sequential(*blocks)
    return init_weights_kaiming_normal(model) if init_weights_kn else model
