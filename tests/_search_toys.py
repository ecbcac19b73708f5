"""A toy search space for the search tests: one candidate per container is clearly best."""

from __future__ import annotations

import torch
from torch import nn

from enot.models import SearchSpaceModel, SearchVariantsContainer
from tests._estimator_toys import Scale

BEST = (0, 2, 1, 3)
SCALES = (0.5, 0.2, 0.0)  # the corruptions: damp the signal (0.0 destroys it)


class ScaleToy(nn.Module):
    """Containers of ``Scale`` candidates; container ``c``'s identity sits at index ``best[c]``.

    A fixed linear head classifies; labels are the head's argmax on the clean input, so the clean
    path (every identity) has the largest margins and the lowest cross-entropy.
    """

    def __init__(self, best: tuple[int, ...] = BEST, dim: int = 8, classes: int = 4) -> None:
        super().__init__()
        blocks = []
        for b in best:
            candidates: list[nn.Module] = [Scale(s) for s in SCALES]
            candidates.insert(b, Scale(1.0))
            blocks.append(SearchVariantsContainer(candidates))
        self.blocks = nn.Sequential(*blocks)
        g = torch.Generator().manual_seed(1)
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(classes, dim, generator=g))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def scale_toy_space() -> SearchSpaceModel:
    return SearchSpaceModel(ScaleToy())


def cheapest_latencies(best: tuple[int, ...] = BEST) -> list[list[float]]:
    """The clean candidate is the most expensive, the zero one (index of 0.0) the cheapest."""
    table = []
    for b in best:
        row = [2.0, 1.0, 0.1]
        row.insert(b, 10.0)
        table.append(row)
    return table


def toy_batch(seed: int, n: int = 32, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.zeros(n, dtype=torch.long)
