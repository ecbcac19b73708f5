"""Checks that refuse bad input before anything changes (issue 12, `docs/reliability.md`).

Each function raises ``TypeError``/``ValueError`` naming the bad value and what is allowed, and has
no side effect, so callers run it before they mutate anything.  Depends on torch only, so every
layer may import it; argument checks of one value (ints, numbers, callables) are in ``_validate.py``.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from enot.functional._validate import check_bound_value

__all__ = [
    "accepted_keywords",
    "check_iterable",
    "check_options",
    "check_param_groups",
    "latency_bound",
]


# --------------------------------------------------------------------------------------- options
def accepted_keywords(owner: type | Any) -> tuple[str, ...]:
    """Names of the keyword parameters of ``owner``'s constructor (a class) or of ``owner`` (a function)."""
    function = owner.__init__ if isinstance(owner, type) else owner
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in kinds and p.name != "self")


def check_options(
    owner: type | str, options: Mapping[str, Any], allowed: Iterable[str], related: Mapping[str, Iterable[str]] | None = None
) -> None:
    """Raises ``ValueError`` for every key of ``options`` not in ``allowed``.

    The message lists every accepted name (the constructor's keyword parameters when ``owner`` is a
    class, and the ``**options``) and suggests the closest one for each unknown name, so that a typo
    such as ``bn_tune_batchs`` points at ``bn_tune_batches``.  ``related`` maps the names of sibling
    classes to the names they accept: an option one of them takes (``max_latency_value`` given to the
    plain search optimizer), or a typo of one, is named with the class that takes it.
    """
    allowed = sorted(allowed)
    unknown = sorted(set(options) - set(allowed))
    if not unknown:
        return
    name = owner if isinstance(owner, str) else owner.__name__
    keywords = [] if isinstance(owner, str) else [k for k in accepted_keywords(owner) if k not in allowed]
    every = sorted({*keywords, *allowed})
    related = {k: set(v) for k, v in (related or {}).items() if k != name}
    suggestions, elsewhere = [], []
    for bad in unknown:
        close = difflib.get_close_matches(str(bad), every, n=1, cutoff=0.6)
        if close:
            suggestions.append(f"{close[0]!r}" if len(unknown) == 1 else f"{close[0]!r} for {bad!r}")
            continue
        theirs = sorted({n for names in related.values() for n in names})
        match = bad if bad in theirs else next(iter(difflib.get_close_matches(str(bad), theirs, n=1, cutoff=0.8)), None)
        if match is not None:
            owners = sorted(k for k, names in related.items() if match in names)
            said = f"{bad!r} is" if match == bad else f"{bad!r} looks like {match!r}, which is"
            elsewhere.append(f"{said} an option of {' and '.join(owners)}, not of {name}")
    hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
    hint += "".join(f"; {note}" for note in elsewhere)
    accepted = f"keyword parameters {keywords}, options {allowed or 'none'}" if keywords else f"options {allowed or 'none'}"
    raise ValueError(f"{name} got unknown options {unknown}{hint}; accepted: {accepted}")


# -------------------------------------------------------------------------------------- numbers
def latency_bound(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float, read by the one bound validator (``enot.functional.check_latency_bound``:
    a real number, a numpy number or a one-element real tensor); an infinite bound is refused here.

    Raises:
        TypeError: If ``value`` is not a real number or a one-element real tensor.
        ValueError: If it is NaN or infinite (an infinite bound is no bound: use ``EnotSearchOptimizer``).
    """
    value = check_bound_value(value, name, where=f"{owner}: ")
    if math.isinf(value):
        raise ValueError(
            f"{owner}: {name}={value} is not a latency bound; for a search without a bound use "
            "EnotSearchOptimizer (build_enot_optimizer('search', ...) without max_latency_value)"
        )
    return value


# ------------------------------------------------------------------------------------ iterables
def check_iterable(owner: str, name: str, value: Any) -> None:
    """Raises ``TypeError`` if ``value`` cannot be iterated (checked on the type: no iterator is made,
    so a ``DataLoader`` starts no workers)."""
    kind = type(value)
    if not (hasattr(kind, "__iter__") or hasattr(kind, "__getitem__")) or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{owner}: {name} must be an iterable of batches (a DataLoader, a list...), got {kind.__name__}"
        )


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
