"""Architecture sampling: uniform, from architecture logits, and strict fairness (FairNAS)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from enot.functional import _random

__all__ = ["best_architecture", "categorical_architecture", "fair_architectures", "uniform_architecture"]


def _check_n_choices(n_choices: Sequence[int]) -> tuple[int, ...]:
    n_choices = tuple(int(n) for n in n_choices)
    if not n_choices or any(n < 1 for n in n_choices):
        raise ValueError(f"n_choices must be a non-empty sequence of positive ints, got {n_choices!r}")
    return n_choices


def uniform_architecture(key: torch.Tensor, n_choices: Sequence[int]) -> list[int]:
    """An architecture with every candidate of every container equally likely."""
    n_choices = _check_n_choices(n_choices)
    g = _random.generator(key)
    return [int(torch.randint(n, (), generator=g)) for n in n_choices]


def categorical_architecture(key: torch.Tensor, logits: Sequence[torch.Tensor]) -> list[int]:
    """An architecture drawn container by container from ``softmax(logits[c])``."""
    g = _random.generator(key)
    return [
        int(torch.multinomial(torch.softmax(l.detach().double().cpu(), 0), 1, generator=g)) for l in logits
    ]


def fair_architectures(key: torch.Tensor, n_choices: Sequence[int]) -> list[list[int]]:
    """Strict-fairness sampling (FairNAS, Chu et al. 2019): ``max(n_choices)`` architectures.

    In a container with the most candidates every candidate appears exactly once among the returned
    architectures; in a container with ``n < max`` candidates every candidate appears
    ``max // n`` or ``max // n + 1`` times (as evenly as possible), in a random order.
    """
    n_choices = _check_n_choices(n_choices)
    g = _random.generator(key)
    n_paths = max(n_choices)
    columns = []
    for n in n_choices:
        repeats, extra = divmod(n_paths, n)
        pool = list(range(n)) * repeats + torch.randperm(n, generator=g)[:extra].tolist()
        order = torch.randperm(n_paths, generator=g).tolist()
        columns.append([pool[i] for i in order])
    return [[column[p] for column in columns] for p in range(n_paths)]


def best_architecture(logits: Sequence[torch.Tensor]) -> list[int]:
    """The most probable candidate of every container (the lowest index on ties)."""
    return [int(torch.argmax(l.detach())) for l in logits]
