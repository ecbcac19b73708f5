"""The validation pick: the K most probable feasible architectures, re-ranked by a score."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from enot.functional._latency import LatencyTable
from enot.functional._selection import top_k_architectures
from enot.functional._validate import check_int

__all__ = ["ValidationPick", "validation_pick"]


class ValidationPick(NamedTuple):
    """What :func:`validation_pick` chose and from what.

    Attributes:
        architecture: The pick.
        candidates: The ``k`` most probable feasible architectures, most probable first.
        scores: The score of each candidate (empty when no score was computed: ``k == 1`` or no
            score function).
    """

    architecture: list[int]
    candidates: list[list[int]]
    scores: list[float]


def validation_pick(
    logits: Sequence[torch.Tensor],
    table: LatencyTable | None,
    max_latency: float | None,
    k: int = 1,
    score: Callable[[list[int]], float] | None = None,
) -> ValidationPick:
    """The architecture to validate: the best-scoring of the ``k`` most probable feasible ones.

    Rule: take the ``k`` architectures of highest probability ``prod_c softmax(logits[c])[a_c]`` among
    those with ``architecture_latency(a, table) <= max_latency`` (all architectures when
    ``max_latency`` is ``None``), exactly (:func:`top_k_architectures`); with ``k == 1`` or no
    ``score`` the pick is the most probable one (what :func:`select_architecture` returns); else the
    pick is the candidate of highest ``score(candidate)``, the more probable one on a tie.  ``score``
    is called once per candidate, most probable first.

    Raises:
        ValueError: If ``k < 1``, a score is NaN, ``max_latency`` is given without ``table``, or as
            :func:`top_k_architectures`.
    """
    check_int(k, "k", minimum=1)
    if max_latency is None:  # no bound: a zero table and bound 0 make every architecture feasible
        table = LatencyTable(0.0, tuple(torch.zeros(l.numel(), dtype=torch.float64) for l in logits))
        max_latency = 0.0
    elif table is None:
        raise ValueError("a latency bound needs a latency table")
    candidates = top_k_architectures(logits, table, max_latency, k)
    if k == 1 or score is None:
        return ValidationPick(list(candidates[0]), candidates, [])
    scores = []
    for arch in candidates:
        value = float(score(list(arch)))
        if math.isnan(value):
            raise ValueError(f"the validation score of architecture {arch} is NaN")
        scores.append(value)
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return ValidationPick(list(candidates[best]), candidates, scores)
