"""Splitting a search space into explicit pytrees and the pure forward of one path."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from enot.functional import _layout

__all__ = ["ApplyFn", "SearchSpaceTrees", "combine", "make_apply", "split"]


class SearchSpaceLike(Protocol):
    """What the functional core asks of a search space (``enot.models.SearchSpaceModel`` has it)."""

    layout: _layout.SearchSpaceLayout

    def selected(self, architecture: Sequence[int]) -> Any: ...
    def architecture_parameters(self) -> Any: ...


class SearchSpaceTrees(NamedTuple):
    """The state of a search space as three pytrees.

    Attributes:
        params: Weights, ``{name: tensor}`` with the names of ``search_space.named_parameters()``.
        buffers: Buffers (batch-norm statistics...), ``{name: tensor}``.
        logits: Architecture logits, one 1-D tensor per container.
    """

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    logits: tuple[torch.Tensor, ...]


# ``apply(params, buffers, architecture, *args, **kwargs) -> (output, new_buffers)``
ApplyFn = Callable[..., tuple[Any, dict[str, torch.Tensor]]]


def split(search_space: nn.Module, *, copy: bool = True) -> SearchSpaceTrees:
    """Splits ``search_space`` into weights, buffers and architecture logits.

    Args:
        search_space: A ``SearchSpaceModel``.
        copy: Clone the tensors (default), so later in-place changes to the module do not reach
            the trees; ``False`` returns detached views that share storage with the module.
    """
    logit_ids = {id(p) for p in search_space.architecture_parameters()}
    take = (lambda t: t.detach().clone()) if copy else (lambda t: t.detach())
    params = {n: take(p) for n, p in search_space.named_parameters() if id(p) not in logit_ids}
    buffers = {n: take(b) for n, b in search_space.named_buffers()}
    logits = tuple(take(p) for p in search_space.architecture_parameters())
    return SearchSpaceTrees(params, buffers, logits)


@torch.no_grad()
def combine(search_space: nn.Module, trees: SearchSpaceTrees) -> None:
    """Writes ``trees`` back into ``search_space`` in place (the stateful counterpart of :func:`split`)."""
    named = dict(search_space.named_parameters())
    named.update(search_space.named_buffers())
    for name, value in {**trees.params, **trees.buffers}.items():
        named[name].copy_(value)
    for param, value in zip(search_space.architecture_parameters(), trees.logits):
        param.copy_(value)


def _has_aliases(module: nn.Module) -> bool:
    """Whether a parameter or buffer of ``module`` is reachable under two names."""
    names = [t for _, t in module.named_parameters(remove_duplicate=False)]
    names += [t for _, t in module.named_buffers(remove_duplicate=False)]
    return len({id(t) for t in names}) != len(names)


def make_apply(search_space: SearchSpaceLike, *, compile: bool = False) -> ApplyFn:
    """Returns the pure forward of one path of ``search_space``.

    With ``compile=True`` the search space is first switched to compiled paths
    (``search_space.compile_paths()``): the model outside the containers and every candidate run
    as separate ``torch.compile`` graphs, so at most ``sum(n_choices)`` candidate graphs plus one
    graph per segment between containers are ever compiled, whatever architectures are sampled.

    ``apply(params, buffers, architecture, *args, **kwargs)`` runs the model with ``architecture``
    selected through ``torch.func.functional_call``, using the given weights and buffers, and
    returns ``(output, new_buffers)``: the buffers the forward updated in place (batch-norm
    statistics in training mode) are cloned first, so the inputs are never mutated.  Weights or
    buffers missing from the trees fall back to the module's own (only those off the path may be
    missing).
    """
    layout = search_space.layout
    if compile and getattr(search_space, "_compiled_model", None) is None:
        search_space.compile_paths()
    # `functional_call` re-ties aliased weights by walking every module on every call (about 2 ms on
    # the benchmark space); only pay for it when the model has aliases.
    tied = _has_aliases(search_space)
    containers = tuple(search_space.search_variants_containers)

    @functools.lru_cache(maxsize=4096)
    def path_names(architecture: tuple[int, ...]) -> tuple[str, ...]:
        return _layout.path_names(layout, architecture)

    @functools.lru_cache(maxsize=4096)
    def on_path_names(architecture: tuple[int, ...]) -> frozenset[str]:
        return frozenset(path_names(architecture))

    def apply(
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        architecture: Sequence[int],
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        on_path = on_path_names(tuple(int(i) for i in architecture))
        new_buffers = {n: (b.clone() if n in on_path else b) for n, b in buffers.items()}
        if any(c._hook is not None for c in containers):
            # A search estimator's hooks run candidates off the path: give them the trees' tensors.
            tensors = {**params, **new_buffers}
        else:
            # Only the path's tensors are swapped in; the rest of the module is never read.
            tensors = {n: t for n, t in params.items() if n in on_path}
            tensors.update((n, b) for n, b in new_buffers.items() if n in on_path)
        # Compiled graphs of a `functional_call`ed module can leave the module holding the tensors
        # passed in and write batch-norm statistics into its own buffers (seen with torch 2.13 on
        # CPU; the returned output and buffers are right).  Keep the module as it was: remember its
        # parameters and a copy of its buffers, and rebind them after the call (in place would bump
        # versions of tensors the graph saved for backward).
        if compile:
            own_params = dict(search_space.named_parameters(remove_duplicate=False))
            own_buffers = {n: b.clone() for n, b in search_space.named_buffers(remove_duplicate=False)}
        try:
            with search_space.selected(architecture):
                output = torch.func.functional_call(
                    search_space, tensors, args, kwargs, strict=False, tie_weights=tied
                )
        finally:
            if compile:
                for slot, saved in (("_parameters", own_params), ("_buffers", own_buffers)):
                    for name, value in saved.items():
                        owner, _, leaf = name.rpartition(".")
                        getattr(search_space.get_submodule(owner), slot)[leaf] = value
        return output, new_buffers

    apply.search_space = search_space  # read by pretrain_step(share_prefix=True)
    apply.path_names = path_names  # cached `path_names(layout, architecture)`, read by path_gradients
    apply.compiled = compile
    return apply
