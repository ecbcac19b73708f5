"""DataLoaders with sensible defaults and the default image transforms (torchvision, imported lazily)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from enot.utils.data._extra import import_extra
from enot.utils.data.csv_annotation_dataset import CsvAnnotationDataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "create_data_loader",
    "create_data_loader_from_csv_annotation",
    "get_default_train_transform",
    "get_default_validation_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875  # validation: resize to size / 0.875, then centre-crop size


def create_data_loader(
    dataset: Dataset,
    batch_size: int = 1,
    shuffle: bool = False,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    **kwargs: Any,
) -> DataLoader:
    """A ``torch.utils.data.DataLoader`` over ``dataset``.

    Same arguments as ``DataLoader``; ``pin_memory`` defaults to whether CUDA is available, and
    ``persistent_workers`` to ``num_workers > 0``.  Other keywords pass through.

    Raises:
        ValueError: On a non-positive ``batch_size``, a negative ``num_workers``, or ``shuffle``
            together with a ``sampler`` (shuffle with the sampler instead).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"create_data_loader: batch_size must be a positive int, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"create_data_loader: num_workers must be an int >= 0, got {num_workers!r}")
    if shuffle and sampler is not None:
        raise ValueError("create_data_loader: shuffle=True with a sampler; let the sampler shuffle "
                         "(DistributedSampler(dataset, shuffle=True))")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kwargs.setdefault("persistent_workers", num_workers > 0)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers,
        collate_fn=collate_fn, drop_last=drop_last, pin_memory=pin_memory, **kwargs,
    )


def create_data_loader_from_csv_annotation(
    csv_annotation_path: str | os.PathLike[str],
    dataset_transform: Callable[[Any], Any] | None = None,
    batch_size: int = 1,
    num_workers: int = 0,
    shuffle: bool = False,
    root_dir: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> DataLoader:
    """:func:`create_data_loader` over a :class:`CsvAnnotationDataset` (other keywords pass through)."""
    dataset = CsvAnnotationDataset(csv_annotation_path, transform=dataset_transform, root_dir=root_dir)
    return create_data_loader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **kwargs)


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) and not isinstance(input_size, bool) else tuple(input_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"input_size must be a positive int or a pair (height, width) of them, got {input_size!r}")
    return size  # type: ignore[return-value]


def _stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) != len(std) or not mean or any(not s > 0 for s in std):
        raise ValueError(f"mean and std must have the same non-zero length and std > 0, got {mean!r}, {std!r}")
    return mean, std


def get_default_train_transform(
    input_size: int | Sequence[int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Any], torch.Tensor]:
    """Training transform of a PIL image: random resized crop to ``input_size``, random horizontal flip,
    tensor in ``[0, 1]``, normalised by ``mean``/``std`` (per channel).

    Raises:
        ImportError: If torchvision is not installed (the ``data`` extra).
        ValueError: On a bad ``input_size``, ``mean`` or ``std``.
    """
    size = _size(input_size)
    mean, std = _stats(mean, std)
    T = import_extra("torchvision.transforms", "get_default_train_transform")
    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


def get_default_validation_transform(
    input_size: int | Sequence[int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Any], torch.Tensor]:
    """Validation transform of a PIL image: resize to ``input_size / 0.875``, centre crop ``input_size``,
    tensor in ``[0, 1]``, normalised by ``mean``/``std``.

    Raises:
        ImportError: If torchvision is not installed (the ``data`` extra).
        ValueError: On a bad ``input_size``, ``mean`` or ``std``.
    """
    size = _size(input_size)
    mean, std = _stats(mean, std)
    T = import_extra("torchvision.transforms", "get_default_validation_transform")
    resize = tuple(int(round(s / CROP_FRACTION)) for s in size)
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
