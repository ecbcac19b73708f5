"""Static description of a search space: which weights and buffers lie on which candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

__all__ = ["SearchSpaceLayout", "build_layout", "path_names", "subtree", "validate_architecture"]

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


def validate_architecture(
    n_choices: Sequence[int], architecture: Sequence[Any], container_names: Sequence[str] | None = None
) -> list[int]:
    """Checks an architecture against the candidate counts and returns it as ``list[int]``.

    Raises:
        TypeError: If an index is not an integer.
        ValueError: On a wrong length or an index out of range, naming the container.
    """
    names = container_names or [f"container {c}" for c in range(len(n_choices))]
    if len(architecture) != len(n_choices):
        raise ValueError(
            f"architecture {list(architecture)!r} has {len(architecture)} entries; the search space has "
            f"{len(n_choices)} containers"
        )
    result = []
    for c, (index, n) in enumerate(zip(architecture, n_choices)):
        if isinstance(index, torch.Tensor) and index.numel() == 1:
            index = index.item()
        if isinstance(index, bool) or not isinstance(index, int) and not hasattr(index, "__index__"):
            raise TypeError(f"architecture entry {c} ({names[c]}) is {index!r}, not an integer")
        index = int(index)
        if not 0 <= index < n:
            raise ValueError(
                f"architecture entry {c} is {index}, out of range for container {names[c]!r} with {n} "
                f"candidates (allowed: 0..{n - 1})"
            )
        result.append(index)
    return result


def path_names(layout: SearchSpaceLayout, architecture: Sequence[int]) -> tuple[str, ...]:
    """Names of the parameters and buffers that lie on ``architecture``'s path, in layout order."""
    chosen = set(enumerate(architecture))
    return tuple(n for n, req in layout.requirements.items() if all(pair in chosen for pair in req))


def subtree(tree: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The sub-dictionary of ``tree`` restricted to ``names`` that it holds."""
    return {n: tree[n] for n in names if n in tree}
