"""`TransformationParameters`: one kind of candidate to generate from every block."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TransformationParameters"]


@dataclass(frozen=True)
class TransformationParameters:
    """Describes one candidate that :func:`generate_pruned_search_variants_model` makes from a block.

    ``None`` leaves that aspect of the block as it is, so ``TransformationParameters()`` (or
    ``width_mult=1.0``) is the original block.

    Args:
        width_mult: Fraction of every inner channel group of the block to keep, in ``[0, 1]``
            (``round(width_mult * channels)``, at least 1).  The channels kept are the most important
            ones of the trained block (largest batch-norm ``|gamma|``, then largest filter L1 norm).
            ``0.0`` removes the block's residual branch, leaving the identity (plus whatever the
            block applies after its residual addition, e.g. ResNet's final ReLU).
        kernel_size: New kernel size (a positive odd int) of the block's depthwise convolutions: the
            trained kernel is centre-cropped (smaller) or zero-padded (larger), padding adjusted so
            that output shapes are unchanged.
        depth_mult: Fraction of the blocks of each stage to keep, in ``(0, 1]``: in a stage of ``n``
            blocks (a block that changes shapes followed by residual blocks of the same parent module)
            the first ``ceil(depth_mult * n)`` are kept and the rest removed as with ``width_mult=0``.

    Raises:
        TypeError: If a value is not a number (``kernel_size``: not an int).
        ValueError: If a value is out of its range.
    """

    width_mult: float | None = None
    kernel_size: int | None = None
    depth_mult: float | None = None

    def __post_init__(self) -> None:
        for name, low, low_open in (("width_mult", 0.0, False), ("depth_mult", 0.0, True)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"TransformationParameters {name} must be a float or None, got {value!r}")
            if not math.isfinite(value) or value > 1.0 or value < low or (low_open and value == low):
                allowed = "0 < depth_mult <= 1" if low_open else "0 <= width_mult <= 1"
                raise ValueError(f"TransformationParameters {name}={value!r} is out of range (allowed: {allowed})")
            object.__setattr__(self, name, float(value))
        k = self.kernel_size
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int):
                raise TypeError(f"TransformationParameters kernel_size must be an int or None, got {k!r}")
            if k < 1 or k % 2 == 0:
                raise ValueError(
                    f"TransformationParameters kernel_size={k} is not allowed (a positive odd int: the trained "
                    "kernel is cropped or zero-padded around its centre)"
                )
