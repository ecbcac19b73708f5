"""Everything a step or a load may change, captured so tests can check that nothing changed."""

from __future__ import annotations

import copy
from typing import Any

import torch


def capture(optimizer: Any) -> dict[str, Any]:
    """Parameters, buffers, ``.grad``, selected architecture, wrapped optimizer state and ENOT state."""
    model = optimizer.model
    state = {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "optimizer": copy.deepcopy(optimizer.optimizer.state_dict()),
        "enot": copy.deepcopy(optimizer._enot_state()),
    }
    if hasattr(model, "forward_architecture"):
        state["architecture"] = list(model.forward_architecture)
    return state


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested dicts/lists of tensors (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()), where
        assert torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
