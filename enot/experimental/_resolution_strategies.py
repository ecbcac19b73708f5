"""Resolution strategies: wrap a dataloader so that its image batches come out resized."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as Fn

__all__ = ["ConstantResolutionStrategy", "PretrainResolutionStrategy", "ResolutionStrategy", "resize_batch"]


def _resolution(name: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair)):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def resize_batch(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``images`` (``N x C x H x W``) resized to ``size`` (bilinear, antialiased when shrinking);
    returned unchanged when already of that size.

    Raises:
        ValueError: If ``images`` is not a 4-D floating-point tensor.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"a resolution strategy resizes N x C x H x W floating-point image batches, got {got}")
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    shrinking = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return Fn.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


class ResolutionStrategy:
    """Base class: ``strategy(dataloader)`` iterates the loader with each batch's images resized.

    A loader item that is a tuple or list has its first element resized (``(images, labels)``); any
    other item is resized itself.  Call the strategy again for every pass over the loader.
    """

    def next_resolution(self) -> tuple[int, int]:
        """The ``(height, width)`` of the next batch."""
        raise NotImplementedError

    def __call__(self, dataloader: Iterable[Any]) -> Iterator[Any]:
        for item in dataloader:
            size = self.next_resolution()
            if isinstance(item, (tuple, list)):
                if not item:
                    raise ValueError("a resolution strategy got an empty batch item")
                resized = [resize_batch(item[0], size), *item[1:]]
                yield resized if isinstance(item, list) else tuple(resized)
            else:
                yield resize_batch(item, size)


class ConstantResolutionStrategy(ResolutionStrategy):
    """Resizes every batch to ``resolution`` (an int for square images, or ``(height, width)``).

    Raises:
        ValueError: On a non-positive resolution.
    """

    def __init__(self, resolution: int | tuple[int, int]) -> None:
        self.resolution = _resolution("resolution", resolution)

    def next_resolution(self) -> tuple[int, int]:
        return self.resolution

    def __repr__(self) -> str:
        return f"ConstantResolutionStrategy(resolution={self.resolution})"


class PretrainResolutionStrategy(ResolutionStrategy):
    """Resizes each batch to a square resolution drawn uniformly from ``[min_resolution, max_resolution]``.

    Pretraining on many resolutions makes every resolution a later search tries a sensible one.

    Args:
        min_resolution, max_resolution: Bounds of the resolution, inclusive.
        resolution_step: Resolutions drawn are ``min_resolution + k * resolution_step``.
        seed: Seed of the strategy's own generator (the global random state is not used).

    Raises:
        ValueError: On non-positive bounds, ``min_resolution > max_resolution`` or a bad step.
    """

    def __init__(self, min_resolution: int, max_resolution: int, *, resolution_step: int = 1, seed: int = 0) -> None:
        lo, _ = _resolution("min_resolution", min_resolution)
        hi, _ = _resolution("max_resolution", max_resolution)
        if lo > hi:
            raise ValueError(f"min_resolution={lo} is above max_resolution={hi}")
        if isinstance(resolution_step, bool) or not isinstance(resolution_step, int) or resolution_step < 1:
            raise ValueError(f"resolution_step must be a positive int, got {resolution_step!r}")
        self.min_resolution, self.max_resolution, self.resolution_step = lo, hi, resolution_step
        self._generator = torch.Generator().manual_seed(int(seed))

    def next_resolution(self) -> tuple[int, int]:
        choices = (self.max_resolution - self.min_resolution) // self.resolution_step + 1
        k = int(torch.randint(choices, (), generator=self._generator))
        side = self.min_resolution + k * self.resolution_step
        return side, side

    def __repr__(self) -> str:
        return (f"PretrainResolutionStrategy(min_resolution={self.min_resolution}, "
                f"max_resolution={self.max_resolution}, resolution_step={self.resolution_step})")
