"""The sampler registry: every way ``enot`` draws architectures is a :data:`Sampler` registered by name.

A sampler is a function ``sampler(key, inputs) -> list[list[int]]`` (one or more architectures)
that draws everything from ``key``.  ``inputs`` is a :class:`SamplingInputs`; a sampler declares at
registration which of its optional fields it needs, so a phase can list the samplers it can feed
(the pretrain step gives ``n_choices`` only).  Adding a sampler: write the function, call
:func:`register_sampler` (``docs/design.md``, "Adding a sampler").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch

from enot.functional import _sampling, _selection
from enot.functional._latency import LatencyTable

__all__ = ["Sampler", "SamplingInputs", "available_samplers", "register_sampler", "sample_architectures"]


class SamplingInputs(NamedTuple):
    """What a sampler may read.

    Attributes:
        n_choices: Candidate count of every container.
        logits: Architecture logits, one 1-D tensor per container (``None``: not given).
        table: Latency table (``None``: not given).
        max_latency: Latency bound (``None``: not given).
    """

    n_choices: tuple[int, ...]
    logits: tuple[torch.Tensor, ...] | None = None
    table: LatencyTable | None = None
    max_latency: float | None = None


Sampler = Callable[[torch.Tensor, SamplingInputs], list[list[int]]]
_OPTIONAL = ("logits", "table", "max_latency")
_REGISTRY: dict[str, tuple[Sampler, frozenset[str]]] = {}


def register_sampler(name: str, sampler: Sampler, *, needs: Iterable[str] = ()) -> None:
    """Registers ``sampler`` under ``name``.

    Args:
        name: A new name (re-registering a name is refused).
        sampler: ``sampler(key, inputs) -> list[list[int]]``; pure: everything random comes from ``key``.
        needs: The optional fields of :class:`SamplingInputs` it reads (``"logits"``, ``"table"``,
            ``"max_latency"``).

    Raises:
        TypeError: If ``sampler`` is not callable.
        ValueError: If ``name`` is taken or ``needs`` names an unknown field.
    """
    if not callable(sampler):
        raise TypeError(f"register_sampler expects a callable sampler, got {sampler!r}")
    needs = frozenset(needs)
    unknown = sorted(needs - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"register_sampler: needs={unknown} are not fields of SamplingInputs; allowed: {_OPTIONAL}")
    if name in _REGISTRY:
        raise ValueError(f"a sampler named {name!r} is already registered")
    _REGISTRY[name] = (sampler, needs)


def available_samplers(given: Iterable[str] = _OPTIONAL) -> tuple[str, ...]:
    """Names of the registered samplers that need only fields in ``given`` (sorted)."""
    given = set(given)
    return tuple(sorted(name for name, (_, needs) in _REGISTRY.items() if needs <= given))


def sample_architectures(key: torch.Tensor, sampler: str, inputs: SamplingInputs) -> list[list[int]]:
    """The architectures the sampler named ``sampler`` draws from ``key``.

    Raises:
        ValueError: If no sampler has that name, or ``inputs`` lacks a field it needs.
    """
    if sampler not in _REGISTRY:
        raise ValueError(f"sampler must be one of {available_samplers()}, got {sampler!r}")
    function, needs = _REGISTRY[sampler]
    missing = sorted(n for n in needs if getattr(inputs, n) is None)
    if missing:
        raise ValueError(f"the {sampler!r} sampler needs {missing}")
    return function(key, inputs)


register_sampler("uniform", lambda key, inputs: [_sampling.uniform_architecture(key, inputs.n_choices)])
register_sampler("fair", lambda key, inputs: _sampling.fair_architectures(key, inputs.n_choices))
register_sampler(
    "categorical", lambda key, inputs: [_sampling.categorical_architecture(key, inputs.logits)], needs=("logits",)
)
register_sampler(
    "feasible",
    lambda key, inputs: [_selection.sample_feasible_architecture(key, inputs.logits, inputs.table, inputs.max_latency)],
    needs=("logits", "table", "max_latency"),
)
