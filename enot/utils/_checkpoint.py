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

Nothing lost, nothing silent (``docs/reliability.md``):

- Files are written atomically: to a temporary file in the same directory, flushed to disk, read
  back with the loader :func:`load_checkpoint` uses (``torch.load(weights_only=True)``) and compared
  with what was meant to be written, then renamed over the target.  An interrupted or unreadable
  write never replaces a good checkpoint.
- :func:`load_checkpoint` reads and validates everything (the file, model keys and shapes, the
  architecture, the optimizer's groups and state shapes, the ``"enot"`` entry, scheduler, scaler,
  functional state, random states) before it changes anything; a file that cannot be read is one
  ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optree
import torch
from torch import nn

from enot.utils._atomic import atomic_write
from enot.utils._optim_state import optimizer_state_problem

__all__ = ["Restored", "load_checkpoint", "save_checkpoint"]

_FORMAT = "enot-checkpoint"
_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_PLAIN = (type(None), bool, int, float, str)


class Restored(NamedTuple):
    """What :func:`load_checkpoint` returns besides restoring objects in place.

    Attributes:
        state: The functional state pytree rebuilt on the template given as ``state`` (else ``None``).
        extra: The ``extra`` dict given to :func:`save_checkpoint` (``{}`` if none).
    """

    state: Any
    extra: dict[str, Any]


# ------------------------------------------------------------------------------ random states
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


def _numpy_state(np_state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bit_generator": np_state["bit_generator"],
        "state": {"key": np_state["key"].cpu().numpy().astype(np.uint32), "pos": np_state["pos"]},
        "has_gauss": np_state["has_gauss"],
        "gauss": np_state["gauss"],
    }


def _python_state(py: Mapping[str, Any]) -> tuple:
    return (py["version"], tuple(py["internal"]), py["gauss"])


def _check_rng_state(state: Any) -> None:
    """Raises if ``state`` would not restore: tried on throw-away generators, the global ones untouched."""
    if not isinstance(state, Mapping):
        raise TypeError(f"it is a {type(state).__name__}, not a dict")
    torch.Generator().set_state(state["torch"].cpu())
    np.random.RandomState().set_state(_numpy_state(state["numpy"]))
    random.Random().setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if not isinstance(cuda, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in cuda):
            raise TypeError("its 'cuda' entry is not a list of tensors")


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_search_space(model: nn.Module) -> bool:
    from enot.models import SearchSpaceModel  # local: importing enot.utils stays light (models sit below)

    return isinstance(model, SearchSpaceModel)


# -------------------------------------------------------------------------------- file format
def _read(path: Path, map_location: Any, who: str) -> Any:
    """``torch.load(path, weights_only=True)``; a file it cannot read is one ``ValueError`` naming why."""
    if not path.exists():
        raise FileNotFoundError(f"{who}: {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{who}: {str(path)!r} is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - every reader failure becomes one message naming the file
        raise ValueError(f"{who}: {str(path)!r} is not a readable checkpoint: {_diagnose(path, error)}") from error


def _diagnose(path: Path, error: BaseException) -> str:
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as file:
        head = file.read(len(_ZIP_MAGIC))
        zeros = head == bytes(len(head))
        while zeros and (chunk := file.read(1 << 20)):
            zeros = not any(chunk)
    if zeros:
        return f"the file holds only zero bytes ({size} bytes)"
    if head != _ZIP_MAGIC:
        return f"it is not a torch.save archive ({size} bytes starting with {head!r}; expected {_ZIP_MAGIC!r})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, pickle.UnpicklingError):
        detail = next((line for line in lines if "WeightsUnpickler error" in line or "Unsupported" in line), "")
        return f"it holds objects that torch.load(weights_only=True) refuses ({detail or type(error).__name__})"
    detail = lines[0] if lines else ""
    return f"the archive is truncated or corrupt ({size} bytes; torch.load: {type(error).__name__}: {detail[:200]})"


def _check_plain(value: Any, where: str) -> None:
    """Refuses what ``torch.load(weights_only=True)`` could not read back, naming where it is."""
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in _PLAIN:
                raise TypeError(f"save_checkpoint: {where} has a key {key!r} of type {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"save_checkpoint: {where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r}), which "
        "torch.load(weights_only=True) cannot read back; use int, float, bool, str, None, tensors, and "
        "lists, tuples and dicts of them (for a numpy scalar: float(x) or int(x))"
    )


def _same(saved: Any, loaded: Any, where: str) -> str | None:
    """Where ``loaded`` differs from ``saved`` (``None``: the same), tensors compared bit for bit."""
    if isinstance(saved, torch.Tensor):
        if not isinstance(loaded, torch.Tensor) or saved.dtype != loaded.dtype or saved.shape != loaded.shape:
            return where
        try:
            torch.testing.assert_close(loaded.to(saved.device), saved, rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return where
        return None
    if isinstance(saved, Mapping):
        if not isinstance(loaded, Mapping) or set(saved) != set(loaded):
            return where
        return next((w for k in saved if (w := _same(saved[k], loaded[k], f"{where}[{k!r}]"))), None)
    if isinstance(saved, (list, tuple)):
        if not isinstance(loaded, (list, tuple)) or len(saved) != len(loaded):
            return where
        return next((w for i, (a, b) in enumerate(zip(saved, loaded)) if (w := _same(a, b, f"{where}[{i}]"))), None)
    if isinstance(saved, float) and isinstance(loaded, float) and math.isnan(saved) and math.isnan(loaded):
        return None
    return None if type(saved) is type(loaded) and saved == loaded else where


# ----------------------------------------------------------------------------------- save
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

    The new file is written next to ``path``, read back with ``torch.load(weights_only=True)`` (the
    loader of :func:`load_checkpoint`) and compared with what was meant to be written; only then is
    it renamed onto ``path``.  On any failure an existing file at ``path`` is left byte for byte as
    it was and no temporary file is left behind (a process killed mid-write may leave a
    ``.<name>.*.tmp`` file, never a damaged ``path``).

    Args:
        path: File to write; its directory must exist.  An existing file is replaced only once the
            new one is completely written and verified.
        model: A ``SearchSpaceModel`` (its selected architecture is saved too) or any ``nn.Module``.
        optimizer: An ENOT optimizer (its ``state_dict()`` carries the sampler's key) or any
            ``torch.optim.Optimizer``.
        scheduler: A learning-rate scheduler (anything with ``state_dict()``).
        scaler: A ``torch.amp.GradScaler``.
        state: A pytree of tensors from :mod:`enot.functional` (``PretrainState``...).
        extra: Plain data of the loop (epoch, step...): ints, floats, bools, strings, ``None``,
            tensors, and lists, tuples and dicts of them.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, ``optimizer`` not a ``torch.optim.Optimizer``,
            a leaf of ``state`` is not a tensor, or ``extra`` holds anything else than the above
            (a numpy scalar, say), naming where.
        FileNotFoundError: If the directory of ``path`` does not exist.
        ValueError: If what was written does not read back equal (the old file is kept).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save_checkpoint: directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"save_checkpoint: {str(path)!r} is a directory")
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
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"save_checkpoint: extra must be a dict, got {type(extra).__name__}")
    payload["extra"] = dict(extra or {})
    _check_plain(payload["extra"], "extra")

    def verify(written: Path) -> None:
        try:
            loaded = _read(written, "cpu", "save_checkpoint")
        except ValueError as error:
            raise ValueError(f"{error}; {str(path)!r} was left unchanged") from error.__cause__
        where = _same(payload, loaded, "checkpoint")
        if where is not None:
            raise ValueError(
                f"save_checkpoint: {where} does not read back equal with torch.load(weights_only=True); "
                f"{str(path)!r} was left unchanged"
            )

    atomic_write(path, lambda file: torch.save(payload, file), verify=verify)


# ----------------------------------------------------------------------------------- load
class _Snapshot:
    """Copies of what :func:`load_checkpoint` changes, put back if applying fails after validation."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, scaler: Any, rng: bool) -> None:
        self.model = None if model is None else {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.architecture = list(model.forward_architecture) if model is not None and _is_search_space(model) else None
        self.optimizer = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
        self.scheduler = None if scheduler is None else copy.deepcopy(scheduler.state_dict())
        self.scaler = None if scaler is None else copy.deepcopy(scaler.state_dict())
        self.rng = _rng_state() if rng else None

    def restore(self, model: Any, optimizer: Any, scheduler: Any, scaler: Any) -> None:
        if self.model is not None:
            model.load_state_dict(self.model)
            if self.architecture is not None:
                model.sample(self.architecture)
        if self.optimizer is not None:
            optimizer.load_state_dict(self.optimizer)
        if self.scheduler is not None:
            scheduler.load_state_dict(self.scheduler)
        if self.scaler is not None:
            scaler.load_state_dict(self.scaler)
        if self.rng is not None:
            _set_rng_state(self.rng)


def _few(names: Any, limit: int = 5) -> str:
    names = sorted(map(str, names))
    return repr(names) if len(names) <= limit else f"{names[:limit]!r} and {len(names) - limit} more"


def _check_model(model: nn.Module, saved: Any, architecture: Any) -> str | None:
    if not isinstance(saved, Mapping):
        return f"its 'model' entry is a {type(saved).__name__}, not a state dict"
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(saved), set(saved) - set(expected)
    if missing or unexpected:
        parts = ([f"lacks {len(missing)} of the model's keys {_few(missing)}"] if missing else []) + (
            [f"has {len(unexpected)} keys the model does not {_few(unexpected)}"] if unexpected else []
        )
        return f"its model state {' and '.join(parts)} (was it saved from another model?)"
    shapes = [
        f"{k}: saved {tuple(saved[k].shape) if isinstance(saved[k], torch.Tensor) else type(saved[k]).__name__}, "
        f"model {tuple(v.shape)}"
        for k, v in expected.items()
        if isinstance(v, torch.Tensor) and (not isinstance(saved[k], torch.Tensor) or saved[k].shape != v.shape)
    ]
    if shapes:
        return f"its model state has {len(shapes)} tensors of another shape: {'; '.join(shapes[:5])}"
    if architecture is not None and _is_search_space(model):
        try:
            model.normalize_architecture(architecture)
        except (TypeError, ValueError) as error:
            return f"its saved architecture does not fit the search space: {error}"
    return None


def _check_optimizer(optimizer: torch.optim.Optimizer, saved: Any) -> str | None:
    problem = optimizer_state_problem(saved, optimizer.param_groups)
    if problem is not None:
        return f"its optimizer state {problem}"
    check_enot_state = getattr(optimizer, "check_enot_state", None)  # an ENOT optimizer (the facade is above utils)
    if check_enot_state is not None and "enot" in saved:
        try:
            check_enot_state(saved["enot"])
        except (TypeError, ValueError) as error:
            return f"its optimizer's 'enot' entry is invalid: {error}"
    return None


def _check_keys(what: str, current: Mapping[str, Any], saved: Any) -> str | None:
    if not isinstance(saved, Mapping):
        return f"its {what!r} entry is a {type(saved).__name__}, not a state dict"
    missing, unexpected = set(current) - set(saved), set(saved) - set(current)
    if missing or unexpected:
        return (
            f"its {what} state does not fit the {what} given (missing {_few(missing)}, unexpected "
            f"{_few(unexpected)}; was it saved from another {what} class?)"
        )
    return None


def _rebuild_state(template: Any, saved: Any) -> tuple[Any, str | None]:
    leaves, spec = optree.tree_flatten(template, none_is_leaf=False)
    if not isinstance(saved, (list, tuple)):
        return None, f"its 'state' entry is a {type(saved).__name__}, not a list of tensors"
    if len(saved) != len(leaves):
        return None, f"the saved state has {len(saved)} tensors, the template {len(leaves)}"
    for i, (old, new) in enumerate(zip(leaves, saved)):
        if not isinstance(new, torch.Tensor) or tuple(old.shape) != tuple(new.shape) or old.dtype != new.dtype:
            return None, (
                f"state leaf {i} is {getattr(new, 'dtype', None)} {tuple(getattr(new, 'shape', ()))}, "
                f"the template's is {old.dtype} {tuple(old.shape)}"
            )
    return optree.tree_unflatten(spec, [new.to(old.device) for old, new in zip(leaves, saved)]), None


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
    before the first step of the resumed run.  Everything is read and validated first; on any error
    nothing (model, architecture, optimizer, scheduler, scaler, random states) has changed.

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
        FileNotFoundError: If ``path`` does not exist.
        ValueError: Naming the file and the problem: it is empty, zeroed, truncated or not a
            ``torch.save`` archive; it is not an ``enot`` checkpoint or is from a newer ``enot``; it
            lacks an entry asked for; the model's keys or shapes, the architecture, the optimizer's
            groups or state shapes, its ``"enot"`` entry, the scheduler's or scaler's keys, the
            functional state's structure or the random states do not fit.
    """
    path = Path(path)
    payload = _open_payload(path, map_location)
    restore_rng = restore_rng and "rng" in payload
    objects = _Objects(model, optimizer, scheduler, scaler)
    restored_state, problem = _validate_payload(path, payload, objects, state, restore_rng)
    if problem is not None:
        raise ValueError(f"load_checkpoint: {str(path)!r}: {problem}; nothing was changed")
    _apply_payload(payload, objects, restore_rng)
    return Restored(restored_state, dict(payload.get("extra", {})))


class _Objects(NamedTuple):
    """What :func:`load_checkpoint` restores in place (``None``: not asked for)."""

    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any


def _open_payload(path: Path, map_location: Any) -> dict[str, Any]:
    """The checkpoint's dict, once the file is known to be an ``enot`` checkpoint this version reads."""
    payload = _read(path, map_location, "load_checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"load_checkpoint: {str(path)!r} is not a checkpoint written by enot.utils.save_checkpoint")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > _VERSION:
        raise ValueError(f"load_checkpoint: {str(path)!r} has format version {version!r}; this enot reads up to {_VERSION}")
    return payload


def _validate_payload(
    path: Path, payload: dict[str, Any], objects: _Objects, state: Any, restore_rng: bool
) -> tuple[Any, str | None]:
    """``(rebuilt functional state, the first problem or None)``; changes nothing.

    Raises:
        ValueError: If an entry asked for was not saved.
    """

    def entry(name: str) -> Any:
        if name not in payload:
            raise ValueError(f"load_checkpoint: {str(path)!r} holds no {name!r} entry (it was not saved)")
        return payload[name]

    model, optimizer, scheduler, scaler = objects
    problems = []
    if model is not None:
        problems.append(_check_model(model, entry("model"), payload.get("architecture")))
    if optimizer is not None:
        problems.append(_check_optimizer(optimizer, entry("optimizer")))
    if scheduler is not None:
        problems.append(_check_keys("scheduler", scheduler.state_dict(), entry("scheduler")))
    if scaler is not None:
        problems.append(_check_keys("scaler", scaler.state_dict(), entry("scaler")))
    restored_state = None
    if state is not None:
        restored_state, problem = _rebuild_state(state, entry("state"))
        problems.append(problem)
    if restore_rng:
        try:
            _check_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            problems.append(f"its random-generator states do not restore ({type(error).__name__}: {error})")
    extra = payload.get("extra", {})
    if not isinstance(extra, dict):
        problems.append(f"its 'extra' entry is a {type(extra).__name__}, not a dict")
    return restored_state, next((p for p in problems if p is not None), None)


def _apply_payload(payload: dict[str, Any], objects: _Objects, restore_rng: bool) -> None:
    """Loads the validated ``payload``; should anything still fail, puts back what was there."""
    model, optimizer, scheduler, scaler = objects
    snapshot = _Snapshot(model, optimizer, scheduler, scaler, restore_rng)
    try:
        if model is not None:
            model.load_state_dict(payload["model"])
            if "architecture" in payload and _is_search_space(model):
                model.sample(payload["architecture"])
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(payload["scheduler"])
        if scaler is not None:
            scaler.load_state_dict(payload["scaler"])
        if restore_rng:
            _set_rng_state(payload["rng"])
    except BaseException:
        snapshot.restore(model, optimizer, scheduler, scaler)
        raise
