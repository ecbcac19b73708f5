"""Static description of a search space: which weights and buffers lie on which candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = [
    "SearchSpaceLayout",
    "build_layout",
    "check_latency_fits",
    "nested_containers",
    "path_names",
    "subtree",
    "validate_architecture",
]

Requirement = tuple[tuple[int, int], ...]  # ((container, candidate), ...) that must all be selected


class SearchSpaceLayout(NamedTuple):
    """What the functional core needs to know about a search space's structure.

    Attributes:
        container_names: Qualified module name of every container, in architecture order.
        n_choices: Number of candidates of every container.
        requirements: For every parameter and buffer name, the ``(container, candidate)`` pairs that
            must all be selected for it to lie on the path (empty: shared by every path).
    """

    container_names: tuple[str, ...]
    n_choices: tuple[int, ...]
    requirements: Mapping[str, Requirement]


def build_layout(module: torch.nn.Module, container_names: Sequence[str]) -> SearchSpaceLayout:
    """Builds the layout of ``module`` whose containers are the modules named ``container_names``."""
    modules = dict(module.named_modules())
    n_choices = tuple(len(modules[name].search_variants) for name in container_names)
    prefixes = [
        (f"{name}.search_variants.{k}.", (c, k))
        for c, name in enumerate(container_names)
        for k in range(n_choices[c])
    ]
    requirements: dict[str, Requirement] = {}
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    for name in names:
        requirements[name] = tuple(pair for prefix, pair in prefixes if name.startswith(prefix))
    return SearchSpaceLayout(tuple(container_names), n_choices, requirements)


def _describe(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        return f"a {value.ndim}-D {value.dtype} {kind}"
    if isinstance(value, Mapping):
        return f"a dict ({value!r}); give a list with one index per container, in the order of the containers"
    return f"{value!r} ({type(value).__name__})" if value is not None else "None"


def _entries(architecture: Any) -> list[Any]:
    """The entries of a list, tuple, or 1-D integer tensor or array; anything else is a ``TypeError``."""
    if isinstance(architecture, (torch.Tensor, np.ndarray)):
        if isinstance(architecture, torch.Tensor):
            integral = not (architecture.is_floating_point() or architecture.is_complex() or architecture.dtype == torch.bool)
        else:
            integral = architecture.dtype.kind in "iu"
        if architecture.ndim == 1 and integral:
            return architecture.tolist()
    elif isinstance(architecture, (list, tuple)):
        return list(architecture)
    raise TypeError(
        f"architecture must be a sequence of ints or a 1-D integer tensor (one index per container), "
        f"got {_describe(architecture)}"
    )


def _index(value: Any, c: int, name: str, n: int) -> int:
    """Entry ``c`` as an int in ``0..n-1``: an int, a numpy integer or a one-element integer tensor."""
    allowed = f"(allowed: an int in 0..{n - 1})"
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"architecture entry {c} ({name}) is a tensor of shape {tuple(value.shape)}, not an integer {allowed}"
            )
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"architecture entry {c} ({name}) is {value.item()!r}, a {value.dtype} tensor, not an integer {allowed}"
            )
        value = int(value.item())
    elif isinstance(value, (bool, np.bool_)):
        raise TypeError(f"architecture entry {c} ({name}) is {value!r}, a bool, not an integer {allowed}")
    elif isinstance(value, (int, np.integer)):
        value = int(value)
    else:
        raise TypeError(f"architecture entry {c} ({name}) is {value!r}, a {type(value).__name__}, not an integer {allowed}")
    if not 0 <= value < n:
        raise ValueError(
            f"architecture entry {c} is {value}, out of range for container {name!r} with {n} "
            f"candidates (allowed: 0..{n - 1})"
        )
    return value


def validate_architecture(
    n_choices: Sequence[int], architecture: Any, container_names: Sequence[str] | None = None
) -> list[int]:
    """The one check of an architecture, used by every entry point (models, latency, functional, facade).

    An architecture is a list or tuple with one candidate index per container (Python ints, numpy
    integers or one-element integer tensors), or a 1-D integer tensor or array.  Floats (even
    ``1.0``), bools, ``None``, strings, dicts and tensors of other shapes are refused, never
    truncated or read as their keys; negative indices do not wrap.

    Returns:
        The architecture as ``list[int]``.

    Raises:
        TypeError: If ``architecture`` is not such a sequence or an entry is not an integer, naming
            the entry, its container and the allowed range.
        ValueError: On a wrong length or an index out of range, naming the container.
    """
    names = container_names or [f"container {c}" for c in range(len(n_choices))]
    entries = _entries(architecture)
    if len(entries) != len(n_choices):
        raise ValueError(
            f"architecture {entries!r} has {len(entries)} entries; the search space has "
            f"{len(n_choices)} containers"
        )
    return [_index(value, c, names[c], n) for c, (value, n) in enumerate(zip(entries, n_choices))]


def path_names(layout: SearchSpaceLayout, architecture: Sequence[int]) -> tuple[str, ...]:
    """Names of the parameters and buffers that lie on ``architecture``'s path, in layout order.

    Raises:
        TypeError, ValueError: If ``architecture`` does not fit the layout (:func:`validate_architecture`).
    """
    architecture = validate_architecture(layout.n_choices, architecture, layout.container_names)
    chosen = set(enumerate(architecture))
    return tuple(n for n, req in layout.requirements.items() if all(pair in chosen for pair in req))


def subtree(tree: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The sub-dictionary of ``tree`` restricted to ``names`` that it holds."""
    return {n: tree[n] for n in names if n in tree}


def nested_containers(layout: SearchSpaceLayout) -> dict[int, tuple[int, int]]:
    """``{inner: (outer, candidate)}`` for every container that lies inside a candidate of another
    (the innermost such candidate), read from the qualified names."""
    nested: dict[int, tuple[int, int]] = {}
    for inner, name in enumerate(layout.container_names):
        for outer, outer_name in enumerate(layout.container_names):
            for k in range(layout.n_choices[outer]):
                candidate = f"{outer_name}.search_variants.{k}"
                if name == candidate or name.startswith(candidate + "."):
                    nested[inner] = (outer, k)  # later (deeper) containers overwrite: the innermost one
    return nested


def check_latency_fits(
    layout: SearchSpaceLayout, n_choices: Sequence[int] | None = None, *, what: str = "the latency table"
) -> None:
    """Checks that an additive latency table with candidate counts ``n_choices`` fits ``layout``
    (``None``: only that the space can have an additive table).

    The latency model is additive (one term per container), so a container nested in a candidate of
    another cannot have an exact latency: its term would count even when the candidate holding it is
    off the path.  Such spaces are refused wherever latencies are attached.

    Raises:
        ValueError: On a nested container (naming both containers), or when the container count or a
            candidate count differs (naming the container).
    """
    for inner, (outer, k) in sorted(nested_containers(layout).items()):
        raise ValueError(
            f"container {layout.container_names[inner]!r} is nested in candidate {k} of container "
            f"{layout.container_names[outer]!r}; latency tables are additive (one term per container) and do "
            "not support nested containers: make the nested choice a container of its own at the top level"
        )
    if n_choices is None:
        return
    n_choices = tuple(int(n) for n in n_choices)
    if len(n_choices) != len(layout.n_choices):
        raise ValueError(
            f"{what} has {len(n_choices)} containers; the search space has {len(layout.n_choices)}"
        )
    for c, (ours, theirs) in enumerate(zip(n_choices, layout.n_choices)):
        if ours != theirs:
            raise ValueError(
                f"{what} has {ours} candidates for container {c}; the search space's "
                f"{layout.container_names[c]!r} has {theirs}"
            )
