"""Explicit random keys: a key is an ``int64`` tensor of shape ``(2,)``; functions never mutate it.

Keys are split and folded with NumPy's ``SeedSequence`` hashing, so a key determines every number
drawn from it, on every platform, whatever else the process has drawn.
"""

from __future__ import annotations

import numpy as np
import torch

from enot.functional._validate import check_int

__all__ = ["fold_in", "generator", "key", "split"]

_SPLIT, _FOLD = 0x5EED5, 0xF01D


def _check(k: torch.Tensor) -> list[int]:
    if not isinstance(k, torch.Tensor) or k.shape != (2,) or k.dtype != torch.int64:
        raise TypeError(f"a random key is an int64 tensor of shape (2,) made by enot.functional.key, got {k!r}")
    return [int(v) & 0xFFFFFFFF for v in k.tolist()]


def _from_state(state: np.ndarray) -> torch.Tensor:
    return torch.tensor(state.astype(np.int64), dtype=torch.int64)


def key(seed: int) -> torch.Tensor:
    """Makes a key from a non-negative integer seed."""
    check_int(seed, "seed", minimum=0)
    return _from_state(np.random.SeedSequence(seed).generate_state(2, np.uint32))


def split(k: torch.Tensor, num: int = 2) -> torch.Tensor:
    """Splits a key into ``num`` new independent keys, returned as a ``(num, 2)`` tensor."""
    check_int(num, "num", minimum=1, where="split: ")
    state = np.random.SeedSequence([*_check(k), _SPLIT]).generate_state(2 * num, np.uint32)
    return _from_state(state).reshape(num, 2)


def fold_in(k: torch.Tensor, data: int) -> torch.Tensor:
    """A new key derived from ``k`` and an integer (for example a step number)."""
    check_int(data, "data", minimum=0, where="fold_in: ")
    return _from_state(np.random.SeedSequence([*_check(k), _FOLD, data]).generate_state(2, np.uint32))


def generator(k: torch.Tensor, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded from ``k`` (the key itself is not consumed)."""
    hi, lo = _check(k)
    return torch.Generator(device=device).manual_seed((hi << 32) | lo)
