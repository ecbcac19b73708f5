"""Snapshots for the fault-injection tests: everything a failed call must leave exactly as it was."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _tensors_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        try:
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return False
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def snapshot(
    model: nn.Module | None = None, optimizer: Any = None, files: list[Path] = (), *, rng: bool = True, **extra: Any
) -> dict:
    """Deep copies of parameters, buffers, architecture, .grad, optimizer state (with the sampler key),
    global random states (unless ``rng=False``: a ``DataLoader`` draws its seed from them) and file bytes."""
    snap: dict[str, Any] = {}
    if rng:
        snap["rng"] = (torch.get_rng_state(), np.random.get_state(legacy=False), random.getstate())
    if model is not None:
        snap["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        snap["grads"] = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
        snap["buffers"] = {n: b.clone() for n, b in model.named_buffers()}
        snap["modes"] = [m.training for m in model.modules()]
        if hasattr(model, "forward_architecture"):
            snap["architecture"] = list(model.forward_architecture)
            snap["od_flag"] = model.output_distribution_optimization_enabled
    if optimizer is not None:
        snap["optimizer"] = copy.deepcopy(optimizer.state_dict())
        snap["sampler_key"] = None if getattr(optimizer, "_key", None) is None else optimizer._key.clone()
    snap["files"] = {str(f): Path(f).read_bytes() if Path(f).exists() else None for f in files}
    snap["extra"] = copy.deepcopy(extra)
    return snap


def assert_unchanged(before: dict, model: nn.Module | None = None, optimizer: Any = None, **extra: Any) -> None:
    after = snapshot(model, optimizer, [Path(f) for f in before["files"]], rng="rng" in before, **extra)
    for part in before:
        if part == "rng":
            t0, n0, p0 = before["rng"]
            t1, n1, p1 = after["rng"]
            assert torch.equal(t0, t1) and p0 == p1 and _tensors_equal(
                {k: v for k, v in n0.items() if k != "state"}, {k: v for k, v in n1.items() if k != "state"}
            ) and np.array_equal(n0["state"]["key"], n1["state"]["key"]), "global random state changed"
            continue
        assert _tensors_equal(before[part], after[part]), f"{part} changed"
