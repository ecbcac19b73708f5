"""Shape helpers that ENOT 2.x's tutorials import from `enot.utils.common`."""

from __future__ import annotations

from typing import Any

import optree
import torch

__all__ = ["input_hw", "is_valid_for_skip_connection"]


def input_hw(inputs: Any) -> tuple[int, int]:
    """Spatial size ``(H, W)`` of an input: the last two dims of the first tensor in ``inputs``.

    ``inputs`` may be a tensor or any tree holding one (the tuple a ``latency_<type>(self, inputs)``
    method receives).

    Raises:
        ValueError: If ``inputs`` holds no tensor with at least two dimensions.
    """
    for leaf in optree.tree_leaves(inputs, none_is_leaf=False):
        if isinstance(leaf, torch.Tensor):
            if leaf.ndim < 2:
                raise ValueError(f"input_hw: the first input tensor has shape {tuple(leaf.shape)}; "
                                 "it needs at least two (spatial) dimensions")
            return int(leaf.shape[-2]), int(leaf.shape[-1])
    raise ValueError(f"input_hw: no tensor in inputs of type {type(inputs).__name__}")


def is_valid_for_skip_connection(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    padding: int,
    stride: int,
    dilation: int = 1,
) -> bool:
    """Whether a convolution's output has its input's shape, so that ``output + input`` is valid.

    True when ``in_channels == out_channels``, ``stride == 1`` and the padding keeps the spatial size
    (``2 * padding == dilation * (kernel_size - 1)``).

    Raises:
        ValueError: On a non-positive channel count, kernel, stride or dilation, or a negative padding.
    """
    values = {"in_channels": in_channels, "out_channels": out_channels, "kernel_size": kernel_size,
              "stride": stride, "dilation": dilation}
    for name, value in {**values, "padding": padding}.items():
        minimum = 0 if name == "padding" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"is_valid_for_skip_connection: {name} must be an int >= {minimum}, got {value!r}")
    return in_channels == out_channels and stride == 1 and 2 * padding == dilation * (kernel_size - 1)
