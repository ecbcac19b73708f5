"""The sandwich rule with in-place distillation (BigNAS, Yu et al. 2020; Once-for-All, Cai et al. 2020).

Per batch the largest path is trained on the user's loss, then the smallest path and ``n_random``
uniformly drawn paths are trained either on the same loss (``distill=False``) or on the soft
cross-entropy against the largest path's detached output on the same batch (``distill=True``,
"in-place distillation").  Everything here is pure: the architectures come from an explicit key,
the teacher's output is a value passed along.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from enot.functional import _random, _sampling
from enot.functional._layout import SearchSpaceLayout, validate_architecture

__all__ = ["Sandwich", "check_sandwich", "distillation_loss", "extreme_architectures", "sandwich_architectures"]


class Sandwich(NamedTuple):
    """Options of the sandwich rule (``pretrain_step(..., sandwich=Sandwich(...))``).

    Attributes:
        largest: The teacher path, trained on the user's loss (one candidate index per container).
        smallest: The smallest path, trained every batch.
        n_random: Uniformly drawn paths per batch besides the two (``>= 0``).
        distill: Train the smallest and random paths on :func:`distillation_loss` against the largest
            path's detached output (``True``) or on the user's loss (``False``).
        temperature: Softmax temperature of the distillation (``> 0``).
    """

    largest: tuple[int, ...]
    smallest: tuple[int, ...]
    n_random: int = 2
    distill: bool = True
    temperature: float = 1.0


def check_sandwich(sandwich: Sandwich, n_choices: Sequence[int]) -> Sandwich:
    """``sandwich`` with its architectures as tuples of ints (read by :func:`validate_architecture`: numpy
    and tensor integers are accepted, floats, bools and out-of-range indices refused); ``ValueError``/
    ``TypeError`` naming a bad field."""
    if not isinstance(sandwich, Sandwich):
        raise TypeError(f"sandwich must be an enot.functional.Sandwich, got {sandwich!r}")
    arches = {}
    for field in ("largest", "smallest"):
        try:  # the one architecture check (enot.functional.validate_architecture)
            arches[field] = tuple(validate_architecture(n_choices, getattr(sandwich, field)))
        except (TypeError, ValueError) as error:
            raise type(error)(f"sandwich.{field}: {error}") from None
    if isinstance(sandwich.n_random, bool) or not isinstance(sandwich.n_random, int) or sandwich.n_random < 0:
        raise ValueError(f"sandwich.n_random must be an integer >= 0, got {sandwich.n_random!r}")
    if not isinstance(sandwich.distill, bool):
        raise TypeError(f"sandwich.distill must be a bool, got {sandwich.distill!r}")
    temperature = sandwich.temperature
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"sandwich.temperature must be a number > 0, got {temperature!r}")
    return sandwich._replace(**arches, temperature=float(temperature))


def extreme_architectures(layout: SearchSpaceLayout, params: Mapping[str, torch.Tensor]) -> tuple[list[int], list[int]]:
    """``(largest, smallest)``: per container the candidate with the most and the fewest weights.

    A candidate's size is the number of elements of the weights in ``params`` that lie under it
    (``layout.requirements`` names the pair ``(container, candidate)``; a weight of a nested container
    counts for every candidate above it).  Ties go to the lowest index.
    """
    sizes = [[0] * n for n in layout.n_choices]
    for name, tensor in params.items():
        for c, k in layout.requirements.get(name, ()):
            sizes[c][k] += tensor.numel()
    largest = [max(range(len(s)), key=lambda k, s=s: (s[k], -k)) for s in sizes]
    smallest = [min(range(len(s)), key=lambda k, s=s: (s[k], k)) for s in sizes]
    return largest, smallest


def sandwich_architectures(
    key: torch.Tensor, n_choices: Sequence[int], sandwich: Sandwich
) -> tuple[torch.Tensor, list[list[int]]]:
    """Splits ``key``; returns ``(new_key, [largest, smallest, random_1, ..., random_n])``."""
    new_key, sub = _random.split(key)
    randoms = [_sampling.uniform_architecture(_random.fold_in(sub, i), n_choices) for i in range(sandwich.n_random)]
    return new_key, [list(sandwich.largest), list(sandwich.smallest), *randoms]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft cross-entropy of ``student`` against ``teacher``'s distribution (classes on dim 1).

    ``temperature**2 * mean(-sum_c softmax(teacher / T)_c * log_softmax(student / T)_c)``; the teacher
    is detached, so gradients reach the student only.  Equals the KL divergence up to the teacher's
    entropy, a constant for the student.

    Raises:
        TypeError: If either output is not a tensor.
        ValueError: If their shapes differ or they have no class dimension.
    """
    if not isinstance(student, torch.Tensor) or not isinstance(teacher, torch.Tensor):
        raise TypeError("in-place distillation needs model outputs that are tensors (logits), got "
                        f"{type(student).__name__} and {type(teacher).__name__}")
    if student.shape != teacher.shape or student.dim() < 2:
        raise ValueError(f"in-place distillation needs student and teacher logits of one shape (batch, classes, ...), "
                         f"got {tuple(student.shape)} and {tuple(teacher.shape)}")
    target = torch.softmax(teacher.detach() / temperature, dim=1)
    return -(target * torch.log_softmax(student / temperature, dim=1)).sum(1).mean() * temperature**2
