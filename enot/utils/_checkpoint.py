"""`save_checkpoint` / `load_checkpoint`: everything a pretrain, search or tune run needs to resume exactly.

A resumed run continues bit for bit like one that was never stopped when the checkpoint holds:

- the model's ``state_dict()`` (weights, buffers, architecture logits, the output-distribution flag)
  and, for a search space, the selected architecture;
- the ENOT optimizer's ``state_dict()``: the wrapped optimizer's state plus the ``"enot"`` entry
  (the architecture sampler's random key, the step count and, in search, the position in the
  batch-norm tuning loader, which is exact for a loader that gives the same order on every pass:
  ``shuffle=False``);
- the learning-rate scheduler's and gradient scaler's ``state_dict()``, if any;
- the global random number generators (``torch``, CUDA when initialised, ``numpy``, ``random``),
  which dropout, data augmentation and shuffling ``DataLoader``s draw from;
- for a loop over :mod:`enot.functional`, the state pytree (``PretrainState``...);
- ``extra``: whatever the loop needs to find its place in the data (epoch, step...).

Files are written atomically: to a temporary file in the same directory, flushed to disk, then
renamed over the target, so an interrupted write never replaces a good checkpoint.  They load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optree
import torch
from torch import nn

from enot.utils._atomic import atomic_write

__all__ = ["Restored", "load_checkpoint", "save_checkpoint"]

_FORMAT = "enot-checkpoint"
_VERSION = 1


class Restored(NamedTuple):
    """What :func:`load_checkpoint` returns besides restoring objects in place.

    Attributes:
        state: The functional state pytree rebuilt on the template given as ``state`` (else ``None``).
        extra: The ``extra`` dict given to :func:`save_checkpoint` (``{}`` if none).
    """

    state: Any
    extra: dict[str, Any]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state({
        "bit_generator": np_state["bit_generator"],
        "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
        "has_gauss": np_state["has_gauss"],
        "gauss": np_state["gauss"],
    })
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_search_space(model: nn.Module) -> bool:
    from enot.models import SearchSpaceModel  # local: importing enot.utils stays light (models sit below)

    return isinstance(model, SearchSpaceModel)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    scheduler: Any = None,
    scaler: Any = None,
    state: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Saves everything needed to resume a run exactly, atomically, to ``path``.

    Args:
        path: File to write; its directory must exist.  An existing file is replaced only once the
            new one is completely written.
        model: A ``SearchSpaceModel`` (its selected architecture is saved too) or any ``nn.Module``.
        optimizer: An ENOT optimizer (its ``state_dict()`` carries the sampler's key) or any
            ``torch.optim.Optimizer``.
        scheduler: A learning-rate scheduler (anything with ``state_dict()``).
        scaler: A ``torch.amp.GradScaler``.
        state: A pytree of tensors from :mod:`enot.functional` (``PretrainState``...).
        extra: Plain data of the loop (epoch, step...): ints, floats, strings, tensors, and lists and
            dicts of them.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, ``optimizer`` not a ``torch.optim.Optimizer``,
            or a leaf of ``state`` is not a tensor.
        FileNotFoundError: If the directory of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save_checkpoint: directory {str(path.parent)!r} does not exist")
    payload: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "rng": _rng_state()}
    if model is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"save_checkpoint: model must be an nn.Module, got {type(model).__name__}")
        payload["model"] = model.state_dict()
        if _is_search_space(model):  # keep the selected architecture
            payload["architecture"] = list(model.forward_architecture)
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"save_checkpoint: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        payload["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        payload["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        payload["scaler"] = scaler.state_dict()
    if state is not None:
        leaves = optree.tree_leaves(state, none_is_leaf=False)
        bad = [type(leaf).__name__ for leaf in leaves if not isinstance(leaf, torch.Tensor)]
        if bad:
            raise TypeError(f"save_checkpoint: every leaf of state must be a tensor, got {sorted(set(bad))}")
        payload["state"] = list(leaves)
    payload["extra"] = dict(extra or {})
    atomic_write(path, lambda file: torch.save(payload, file))


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    scheduler: Any = None,
    scaler: Any = None,
    state: Any = None,
    restore_rng: bool = True,
    map_location: Any = None,
) -> Restored:
    """Restores what :func:`save_checkpoint` wrote: objects in place, the functional state anew.

    Build the model, optimizer, scheduler and scaler exactly as for the original run, then call this
    before the first step of the resumed run.

    Args:
        path: File written by :func:`save_checkpoint`.
        model, optimizer, scheduler, scaler: Objects to restore in place (each must have been saved).
        state: A template pytree with the structure of the saved functional state (for example the
            result of ``pretrain_init``); it is not modified.
        restore_rng: Restore the global random number generators (default ``True``).
        map_location: As in ``torch.load``.

    Returns:
        :class:`Restored` with the rebuilt ``state`` (or ``None``) and the ``extra`` dict.

    Raises:
        ValueError: If the file is not an ``enot`` checkpoint, lacks an entry asked for, or its state
            does not match the template's structure.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"load_checkpoint: {str(path)!r} is not a checkpoint written by enot.utils.save_checkpoint")
    if payload.get("version", 0) > _VERSION:
        raise ValueError(
            f"load_checkpoint: {str(path)!r} has format version {payload['version']}; this enot reads up to {_VERSION}"
        )

    def entry(name: str) -> Any:
        if name not in payload:
            raise ValueError(f"load_checkpoint: {str(path)!r} holds no {name!r} entry (it was not saved)")
        return payload[name]

    if model is not None:
        model.load_state_dict(entry("model"))
        if "architecture" in payload and _is_search_space(model):
            model.sample(payload["architecture"])
    if optimizer is not None:
        optimizer.load_state_dict(entry("optimizer"))
    if scheduler is not None:
        scheduler.load_state_dict(entry("scheduler"))
    if scaler is not None:
        scaler.load_state_dict(entry("scaler"))
    restored_state = None
    if state is not None:
        leaves, spec = optree.tree_flatten(state, none_is_leaf=False)
        saved = entry("state")
        if len(saved) != len(leaves):
            raise ValueError(
                f"load_checkpoint: the saved state has {len(saved)} tensors, the template {len(leaves)}"
            )
        for i, (old, new) in enumerate(zip(leaves, saved)):
            if not isinstance(new, torch.Tensor) or tuple(old.shape) != tuple(new.shape) or old.dtype != new.dtype:
                raise ValueError(
                    f"load_checkpoint: state leaf {i} is {getattr(new, 'dtype', None)} {tuple(getattr(new, 'shape', ()))}, "
                    f"the template's is {old.dtype} {tuple(old.shape)}"
                )
        restored_state = optree.tree_unflatten(spec, [new.to(old.device) for old, new in zip(leaves, saved)])
    if restore_rng and "rng" in payload:
        _set_rng_state(payload["rng"])
    return Restored(restored_state, dict(payload.get("extra", {})))
