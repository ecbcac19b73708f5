"""Checks of the facade's own inputs: the latency bound of the fixed-latency optimizer and the
parameter groups of the wrapped ``torch.optim`` optimizer (``docs/reliability.md``).

Each raises ``TypeError``/``ValueError`` naming the bad value and what is allowed, and has no side
effect, so callers run it before they mutate anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

import enot.functional as ef

__all__ = ["check_param_groups", "latency_bound"]


# -------------------------------------------------------------------------------------- numbers
def latency_bound(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float, read by the one bound validator (``enot.functional.check_latency_bound``:
    a real number, a numpy number or a one-element real tensor); an infinite bound is refused here.

    Raises:
        TypeError: If ``value`` is not a real number or a one-element real tensor.
        ValueError: If it is NaN or infinite (an infinite bound is no bound: use ``EnotSearchOptimizer``).
    """
    value = ef.check_latency_bound(value, name=name, where=f"{owner}: ")
    if math.isinf(value):
        raise ValueError(
            f"{owner}: {name}={value} is not a latency bound; for a search without a bound use "
            "EnotSearchOptimizer (build_enot_optimizer('search', ...) without max_latency_value)"
        )
    return value


# ------------------------------------------------------------------------------ parameter sets
def _params_of(group: Any) -> list[Any]:
    params = group["params"] if isinstance(group, Mapping) else group
    if isinstance(params, torch.Tensor):
        return [params]
    return list(params)


def check_param_groups(
    owner: str,
    groups: Iterable[Any],
    *,
    expected: Iterable[torch.Tensor],
    expected_name: str,
    other: Iterable[torch.Tensor],
    other_name: str,
    new_group: bool = False,
) -> None:
    """Refuses parameter sets with which a phase would run and learn nothing.

    An optimizer must hold at least one of the parameters the phase trains (a search over the weights
    only "finds" ``[0, 0, ...]``); a group added later must not consist of the other phase's
    parameters only.  Other parameters next to the expected ones are tolerated, so ENOT 2.x scripts
    that pass ``search_space.parameters()`` keep working: search freezes the weights, pretrain gives
    the logits no gradient, and a learnable part of the loss may sit beside them.

    Args:
        owner: Name for the message.
        groups: ``param_groups`` (dicts with ``"params"``) or lists of tensors.
        expected: The parameters this phase trains.
        expected_name: How the user gets them, e.g. ``"search_space.model_parameters()"``.
        other: The other phase's parameters.
        other_name: How those are named in the message.
        new_group: ``groups`` is one group for ``add_param_group``.

    Raises:
        ValueError: Naming what the optimizer (or group) holds and what it should hold.
    """
    held = [p for group in groups for p in _params_of(group)]
    if not held:
        return
    other_ids = {id(p) for p in other}
    n_other = sum(id(p) in other_ids for p in held)
    if new_group:
        if n_other == len(held):
            raise ValueError(
                f"{owner}.add_param_group: the group holds only {other_name} ({n_other}), which this phase never "
                f"trains; add {expected_name} instead"
            )
        return
    expected_ids = {id(p) for p in expected}
    if not expected_ids or any(id(p) in expected_ids for p in held):
        return  # (a space without such parameters: there is nothing else the optimizer could hold)
    kinds = [f"{n_other} of {other_name}"] if n_other else []
    if len(held) > n_other:
        kinds.append(f"{len(held) - n_other} parameter(s) from outside the search space")
    raise ValueError(
        f"{owner}: the optimizer holds none of {expected_name}, so this phase would learn nothing (it holds "
        f"{' and '.join(kinds)}); build it over {expected_name}"
    )
