"""Snapshots of everything a failed call must leave exactly as it was, and one exact comparison.

``snapshot`` deep-copies parameters, ``.grad``, buffers, train/eval modes, the selected architecture,
optimizer state (the sampler key too), global random states and file bytes; ``assert_unchanged`` takes
a second snapshot and compares; ``capture`` is the snapshot of an ENOT optimizer and its model that two
runs are compared by; ``assert_same`` compares two snapshots (or any nested dicts/lists of tensors).
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Exact equality of nested dicts/lists/tuples of tensors, arrays and plain values (NaN equal to NaN);
    the message names the first entry that differs."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{where}: {a!r} != {b!r}"
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{where} changed: {m}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), f"{where}: {a!r} != {b!r}"
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{where} changed"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


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
        snap["optimizer"] = copy.deepcopy(optimizer.state_dict())  # an ENOT optimizer's has the "enot" entry
        snap["sampler_key"] = None if getattr(optimizer, "_key", None) is None else optimizer._key.clone()
    snap["files"] = {str(f): Path(f).read_bytes() if Path(f).exists() else None for f in files}
    snap["extra"] = copy.deepcopy(extra)
    return snap


def capture(optimizer: Any) -> dict:
    """The snapshot of an ENOT optimizer and its model, without the global random states (which two runs
    compared with each other need not share)."""
    return snapshot(optimizer.model, optimizer, rng=False)


def assert_unchanged(before: dict, model: nn.Module | None = None, optimizer: Any = None, **extra: Any) -> None:
    """Raises ``AssertionError`` naming the first entry of ``before`` (a :func:`snapshot`) that changed."""
    after = snapshot(model, optimizer, [Path(f) for f in before["files"]], rng="rng" in before, **extra)
    assert_same(before, after, "snapshot")
