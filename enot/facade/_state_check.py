"""Checks of an ENOT optimizer's state dict, run before :meth:`load_state_dict` loads anything.

Each function raises ``TypeError``/``ValueError`` naming the bad entry and what is allowed, and has no
side effect.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from enot.utils import optimizer_state_problem

__all__ = ["check_enot_entry", "check_optimizer_state", "check_param_shapes", "check_space", "param_shapes"]

def param_shapes(param_groups: Sequence[Mapping[str, Any]]) -> list[list[list[int]]]:
    """Shape of every parameter of every group, as lists (what ``state_dict()["enot"]`` records)."""
    return [[list(p.shape) for p in group["params"]] for group in param_groups]


def _count(value: Any) -> bool:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not (value.is_floating_point() or value.is_complex()):
        value = value.item()
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 0


def check_enot_entry(owner: str, state: Any, saved_by_us: Mapping[str, Any]) -> None:
    """Checks the ``"enot"`` entry: a dict whose keys this optimizer saves (``saved_by_us``, missing
    ones keep their defaults), counts that are non-negative ints, a sampler key of two integers.

    Raises:
        TypeError: If the entry is not a dict.
        ValueError: On an unknown key or a value of the wrong kind.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}.load_state_dict: the 'enot' entry must be a dict, got {type(state).__name__}")
    unknown = sorted(map(str, set(state) - set(saved_by_us)))
    if unknown:
        raise ValueError(
            f"{owner}.load_state_dict: the 'enot' entry has keys {unknown} that {owner} does not save (it saves "
            f"{sorted(saved_by_us)}); was it saved by another ENOT optimizer?"
        )
    for name in ("step_count", "bn_position"):
        if name in state and not _count(state[name]):
            raise ValueError(
                f"{owner}.load_state_dict: the 'enot' entry's {name!r} must be a non-negative int, got {state[name]!r}"
            )
    if "key" in state:
        key = state["key"]
        ok = isinstance(key, torch.Tensor) and tuple(key.shape) == (2,)
        ok = ok and not (key.is_floating_point() or key.is_complex() or key.dtype == torch.bool)
        if not ok:
            what = f"a {key.dtype} tensor of shape {tuple(key.shape)}" if isinstance(key, torch.Tensor) else repr(key)
            raise ValueError(
                f"{owner}.load_state_dict: the 'enot' entry's 'key' must be an integer tensor of shape (2,) "
                f"(enot.functional.random.key), got {what}"
            )


def _shape_list(value: Any) -> list[list[list[int]]] | None:
    try:
        return [[[int(d) for d in shape] for shape in group] for group in value]
    except (TypeError, ValueError):
        return None


def check_param_shapes(owner: str, saved: Any, param_groups: Sequence[Mapping[str, Any]]) -> None:
    """Checks the parameter shapes recorded in the ``"enot"`` entry against the wrapped optimizer's.

    Raises:
        ValueError: Naming the first group and parameter whose shape differs (or the counts).
    """
    shapes = _shape_list(saved)
    if shapes is None:
        raise ValueError(f"{owner}.load_state_dict: the 'enot' entry's 'param_shapes' is not a list of shapes: {saved!r}")
    ours = param_shapes(param_groups)
    if [len(g) for g in shapes] != [len(g) for g in ours]:
        raise ValueError(
            f"{owner}.load_state_dict: the state was saved for parameter groups of sizes {[len(g) for g in shapes]}; "
            f"this optimizer's groups have {[len(g) for g in ours]}; the state belongs to another model or search space"
        )
    for g, (theirs, mine) in enumerate(zip(shapes, ours)):
        for i, (a, b) in enumerate(zip(theirs, mine)):
            if a != b:
                raise ValueError(
                    f"{owner}.load_state_dict: parameter {i} of group {g} had shape {tuple(a)} when the state was "
                    f"saved and has {tuple(b)} here; the state belongs to another model or search space"
                )


def check_optimizer_state(owner: str, state_dict: Any, param_groups: Sequence[Mapping[str, Any]]) -> None:
    """Checks the wrapped optimizer's part of a state dict (``enot.utils``' one check, which
    ``load_checkpoint`` runs too): a dict with ``"state"`` and ``"param_groups"``, the group counts and
    sizes, and per-parameter state (``momentum_buffer``, ``exp_avg``, ``exp_inf``...) of the parameters'
    shapes.

    Raises:
        ValueError: Naming the entry (the missing key, the group, or the parameter, the state entry
            and both shapes).
    """
    problem = optimizer_state_problem(state_dict, param_groups)
    if problem is not None:
        raise ValueError(f"{owner}.load_state_dict: the optimizer state {problem}; nothing was loaded")


def check_space(owner: str, saved: Any, n_choices: Sequence[int], container_names: Sequence[str]) -> None:
    """Checks the search space recorded in the ``"enot"`` entry (``{"n_choices", "container_names"}``).

    Raises:
        ValueError: If the containers or their candidate counts differ, naming the first difference.
    """
    if not isinstance(saved, Mapping) or "n_choices" not in saved:
        raise ValueError(f"{owner}.load_state_dict: the 'enot' entry's 'space' is not a search-space record: {saved!r}")
    theirs = [int(n) for n in saved["n_choices"]]
    names = list(saved.get("container_names", container_names))
    if len(theirs) != len(n_choices):
        raise ValueError(
            f"{owner}.load_state_dict: the state was saved for a search space of {len(theirs)} containers; this one "
            f"has {len(n_choices)}"
        )
    for c, (a, b, saved_name, name) in enumerate(zip(theirs, n_choices, names, container_names)):
        if a != b or saved_name != name:
            raise ValueError(
                f"{owner}.load_state_dict: container {c} was {saved_name!r} with {a} candidates when the state was "
                f"saved; here it is {name!r} with {b}; the state belongs to another search space"
            )
