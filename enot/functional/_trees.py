"""Splitting a search space into explicit pytrees and the pure forward of one path."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import torch
from torch import nn

from enot.functional import _layout

__all__ = ["Apply", "ApplyMemo", "PATH_MEMO_SIZE", "SearchSpaceTrees", "make_apply", "split", "write_trees"]

PATH_MEMO_SIZE = 4096  # architectures whose path names an Apply keeps (least recently used dropped)
_T = TypeVar("_T")


class SearchSpaceLike(Protocol):
    """What the functional core asks of a search space (``enot.models.SearchSpaceModel`` has it).

    Besides ``nn.Module``'s ``named_parameters``, ``named_buffers``, ``named_modules`` and
    ``get_submodule``; each container offers ``search_variants``, ``active_index``,
    ``output_hook(hook)`` and ``has_output_hook`` (``docs/design.md``, "Layers").
    """

    layout: _layout.SearchSpaceLayout
    search_variants_containers: Sequence[Any]
    paths_compiled: bool

    def selected(self, architecture: Sequence[int]) -> Any: ...
    def architecture_parameters(self) -> Any: ...
    def compile_paths(self, **compile_kwargs: Any) -> None: ...


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
def write_trees(search_space: nn.Module, trees: SearchSpaceTrees) -> None:
    """Writes ``trees`` into ``search_space`` in place (impure: the stateful counterpart of :func:`split`)."""
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


class ApplyMemo:
    """The caches of one :class:`Apply`: bounded, and typed by what they hold.

    * path names per architecture (:meth:`path`): the ``size`` most recently used architectures;
    * the shared prefix's modules (:meth:`prefix`): found once, by the function the caller gives.
    """

    def __init__(self, size: int = PATH_MEMO_SIZE) -> None:
        self.size = size
        self._paths: collections.OrderedDict[tuple[int, ...], tuple[tuple[str, ...], frozenset[str]]] = (
            collections.OrderedDict()
        )
        self._prefix: Any = None

    def __len__(self) -> int:
        """Architectures whose path names are kept."""
        return len(self._paths)

    def path(self, layout: _layout.SearchSpaceLayout, architecture: tuple[int, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
        """``(path_names(layout, architecture), the same as a frozenset)``, computed once per kept architecture."""
        entry = self._paths.get(architecture)
        if entry is None:
            names = _layout.path_names(layout, architecture)
            entry = self._paths[architecture] = (names, frozenset(names))
            if len(self._paths) > self.size:
                self._paths.popitem(last=False)
        else:
            self._paths.move_to_end(architecture)
        return entry

    def prefix(self, find: Callable[[], _T]) -> _T:
        """The shared prefix's modules: ``find()`` on the first call, the same object after."""
        if self._prefix is None:
            self._prefix = find()
        return self._prefix

    @property
    def found_prefix(self) -> Any:
        """What :meth:`prefix` found (``None`` before its first call)."""
        return self._prefix


@dataclasses.dataclass(frozen=True, eq=False)
class Apply:
    """The pure forward of one path of a search space (made by :func:`make_apply`).

    ``apply(params, buffers, architecture, *args, **kwargs) -> (output, new_buffers)`` runs the model
    with ``architecture`` selected through ``torch.func.functional_call``, using the given weights and
    buffers.  The buffers the forward updates in place (batch-norm statistics in training mode) are
    cloned first, so the inputs are never mutated.  Weights or buffers missing from the trees fall
    back to the module's own (only those off the path may be missing).

    Attributes:
        search_space: The search space it runs.
        layout: ``search_space.layout``.
        compiled: Whether it runs the compiled paths (``make_apply(..., compile=True)``).
        tie_weights: Whether ``functional_call`` re-ties aliased weights (only when the model has any:
            the walk over every module costs about 1 ms per call on the benchmark space).
        memo: Its caches (:class:`ApplyMemo`): path names per architecture (bounded), the shared
            prefix's modules.
    """

    search_space: SearchSpaceLike
    layout: _layout.SearchSpaceLayout
    compiled: bool
    tie_weights: bool
    memo: ApplyMemo = dataclasses.field(default_factory=ApplyMemo, repr=False)

    def path_names(self, architecture: Sequence[int]) -> tuple[str, ...]:
        """``enot.functional.path_names(self.layout, architecture)``, cached per architecture."""
        return self.memo.path(self.layout, tuple(int(i) for i in architecture))[0]

    def _on_path(self, architecture: tuple[int, ...]) -> frozenset[str]:
        return self.memo.path(self.layout, architecture)[1]

    def __call__(
        self,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        architecture: Sequence[int],
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        on_path = self._on_path(tuple(int(i) for i in architecture))
        new_buffers = {n: (b.clone() if n in on_path else b) for n, b in buffers.items()}
        tensors = self._swapped_in(params, new_buffers, on_path)
        with self._module_kept_as_is():
            with self.search_space.selected(architecture):
                output = torch.func.functional_call(
                    self.search_space, tensors, args, kwargs, strict=False, tie_weights=self.tie_weights
                )
        return output, new_buffers

    def _swapped_in(
        self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], on_path: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        if any(c.has_output_hook for c in self.search_space.search_variants_containers):
            # A search estimator's hooks run candidates off the path: give them the trees' tensors.
            return {**params, **buffers}
        # Only the path's tensors are swapped in; the rest of the module is never read.
        tensors = {n: t for n, t in params.items() if n in on_path}
        tensors.update((n, b) for n, b in buffers.items() if n in on_path)
        return tensors

    @contextlib.contextmanager
    def _module_kept_as_is(self) -> Iterator[None]:
        """Compiled graphs of a ``functional_call``ed module can leave the module holding the tensors
        passed in and write batch-norm statistics into its own buffers (seen with torch 2.13 on CPU;
        the returned output and buffers are right).  Keep the module as it was: remember its
        parameters and a copy of its buffers, and rebind them after the call (in place would bump
        versions of tensors the graph saved for backward)."""
        if not self.compiled:
            yield
            return
        space = self.search_space
        own_params = dict(space.named_parameters(remove_duplicate=False))
        own_buffers = {n: b.clone() for n, b in space.named_buffers(remove_duplicate=False)}
        try:
            yield
        finally:
            # Into torch's own slots: inside an enclosing functional_call (a nested apply, as the
            # two-path estimator runs) a slot holds a plain tensor, which setattr would refuse.
            for slot, saved in (("_parameters", own_params), ("_buffers", own_buffers)):
                for name, value in saved.items():
                    owner, _, leaf = name.rpartition(".")
                    getattr(space.get_submodule(owner), slot)[leaf] = value


def make_apply(search_space: SearchSpaceLike, *, compile: bool = False) -> Apply:
    """Returns the pure forward of one path of ``search_space`` (an :class:`Apply`).

    With ``compile=True`` the search space is first switched to compiled paths
    (``search_space.compile_paths()``): the model outside the containers and every candidate run
    as separate ``torch.compile`` graphs, so at most ``sum(n_choices)`` candidate graphs plus one
    graph per segment between containers are ever compiled, whatever architectures are sampled.
    """
    if compile and not search_space.paths_compiled:
        search_space.compile_paths()
    return Apply(search_space, search_space.layout, compile, _has_aliases(search_space))
