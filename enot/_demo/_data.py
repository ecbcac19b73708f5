"""scikit-learn's digits (shipped with scikit-learn, no download), split into train / search / test."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


class Splits(NamedTuple):
    """Tensors ``(x, y)`` per split; ``x`` is ``(n, 1, 8, 8)`` float32 in ``[0, 1]``."""

    train: tuple[torch.Tensor, torch.Tensor]
    search: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def load_digits_splits(seed: int) -> Splits:
    """60% train (pretrain, tune), 20% search (architecture logits), 20% test; stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, random_state=seed, stratify=y)
    x_search, x_test, y_search, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
    )

    def pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(a), torch.from_numpy(b)

    return Splits(pair(x_train, y_train), pair(x_search, y_search), pair(x_test, y_test))


def loader(split: tuple[torch.Tensor, torch.Tensor], batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """A ``DataLoader`` over one split; shuffling draws from its own seeded generator."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(*split), batch_size=batch_size, shuffle=shuffle, generator=generator)
