"""The one check of a ``torch.optim`` state dict against the optimizer that will load it.

``EnotPretrainOptimizer.load_state_dict`` (and its siblings) and :func:`enot.utils.load_checkpoint`
both run :func:`optimizer_state_problem` before anything is loaded, so they accept and refuse the same
dicts with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["PARAM_SHAPED_STATE", "optimizer_state_problem"]

# Per-parameter state of torch.optim's optimizers that has the parameter's shape (0-d entries such
# as NAdam's ``mu_product`` or the step counts are scalars and not compared).  A test derives the keys
# from every torch.optim optimizer and checks that this list holds them all.
PARAM_SHAPED_STATE = (
    "acc_delta",  # Adadelta
    "ax",  # ASGD
    "exp_avg",  # Adam, AdamW, NAdam, RAdam, Adamax, SparseAdam
    "exp_avg_sq",  # Adam, AdamW, NAdam, RAdam, SparseAdam
    "exp_inf",  # Adamax
    "grad_avg",  # RMSprop (centered)
    "max_exp_avg_sq",  # Adam, AdamW (amsgrad)
    "momentum_buffer",  # SGD, RMSprop (momentum)
    "mu_product",  # NAdam (0-d)
    "prev",  # Rprop
    "square_avg",  # Adadelta, RMSprop
    "step_size",  # Rprop
    "sum",  # Adagrad
)


def _groups_problem(saved_groups: Sequence[Any], param_groups: Sequence[Mapping[str, Any]]) -> str | None:
    if len(saved_groups) != len(param_groups):
        return f"has {len(saved_groups)} parameter groups, the optimizer {len(param_groups)}"
    for g, (saved, group) in enumerate(zip(saved_groups, param_groups)):
        if not isinstance(saved, Mapping) or not isinstance(saved.get("params"), (list, tuple)):
            return f"parameter group {g} has no 'params' list"
        if len(saved["params"]) != len(group["params"]):
            return f"parameter group {g} holds {len(saved['params'])} parameters, the optimizer's {len(group['params'])}"
    return None


def optimizer_state_problem(saved: Any, param_groups: Sequence[Mapping[str, Any]]) -> str | None:
    """What makes ``saved`` unfit to load into an optimizer with ``param_groups`` (``None``: it fits).

    Checks that ``saved`` is a dict with a ``"state"`` dict and a ``"param_groups"`` list, that the
    group counts and sizes agree, that every state entry belongs to a listed parameter and that each
    :data:`PARAM_SHAPED_STATE` tensor has its parameter's shape.  Side-effect free.

    Returns:
        A phrase to follow "the optimizer state" (``"has no 'param_groups' entry ..."``), or ``None``.
    """
    if not isinstance(saved, Mapping):
        return f"is a {type(saved).__name__}, not a state dict"
    missing = [k for k in ("state", "param_groups") if k not in saved]
    if missing:
        return (f"has no {' and no '.join(repr(k) for k in missing)} entry (an optimizer state dict has 'state' and "
                f"'param_groups'; this one has {sorted(map(str, saved))})")
    state, saved_groups = saved["state"], saved["param_groups"]
    if not isinstance(state, Mapping) or not isinstance(saved_groups, (list, tuple)):
        return (f"has a 'state' entry of type {type(state).__name__} and a 'param_groups' entry of type "
                f"{type(saved_groups).__name__} (expected a dict and a list)")
    problem = _groups_problem(saved_groups, param_groups)
    if problem is not None:
        return problem
    index = {
        i: (g, k, p)
        for g, (saved_group, group) in enumerate(zip(saved_groups, param_groups))
        for k, (i, p) in enumerate(zip(saved_group["params"], group["params"]))
    }
    for i, entry in state.items():
        if i not in index:
            return f"has an entry for parameter {i!r}, which no parameter group lists"
        if not isinstance(entry, Mapping):
            return f"of parameter {i!r} is a {type(entry).__name__}, not a dict"
        g, k, param = index[i]
        for name in PARAM_SHAPED_STATE:
            value = entry.get(name)
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                return (
                    f"{name!r} of parameter {k} of group {g} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(param.shape)}"
                )
    return None
