"""`SearchVariantsContainer`: one choice block of a search space."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["ContainerHook", "SearchVariantsContainer"]

# Signature of an output hook (:meth:`SearchVariantsContainer.output_hook`); the search estimator
# installs one per container: ``hook(container, output, args, kwargs) -> output``.
ContainerHook = Callable[["SearchVariantsContainer", torch.Tensor, tuple, dict], torch.Tensor]


class SearchVariantsContainer(nn.Module):
    """Holds the candidate operations of one choice block.

    Every candidate takes the same inputs and returns outputs of the same shape; only the selected
    one runs in :meth:`forward`.

    Args:
        search_variants: The candidate operations (``nn.Module`` instances, at least one).
        default_operation_index: The candidate selected until an architecture is sampled.

    Raises:
        ValueError: If ``search_variants`` is empty or the default index is out of range.
        TypeError: If a candidate is not an ``nn.Module``.
    """

    def __init__(self, search_variants: Iterable[nn.Module], default_operation_index: int = 0) -> None:
        super().__init__()
        if isinstance(search_variants, nn.Module) and not isinstance(search_variants, nn.ModuleList):
            raise TypeError(
                "SearchVariantsContainer expects an iterable of nn.Module candidates, got a single "
                f"{type(search_variants).__name__}; wrap it in a list"
            )
        variants = list(search_variants)
        if not variants:
            raise ValueError("SearchVariantsContainer got an empty list of search variants; give at least one")
        for i, variant in enumerate(variants):
            if not isinstance(variant, nn.Module):
                raise TypeError(
                    f"SearchVariantsContainer candidate {i} is a {type(variant).__name__}, not an nn.Module"
                )
        if isinstance(default_operation_index, bool) or not isinstance(default_operation_index, int):
            raise TypeError(
                f"SearchVariantsContainer default_operation_index must be an int, got {default_operation_index!r}"
            )
        if not 0 <= default_operation_index < len(variants):
            raise ValueError(
                f"SearchVariantsContainer default_operation_index={default_operation_index} is out of range "
                f"for {len(variants)} candidates (allowed: 0..{len(variants) - 1})"
            )
        self.search_variants = nn.ModuleList(variants)
        self.default_operation_index = default_operation_index
        self.active_index = default_operation_index
        self._hook: ContainerHook | None = None
        self._compiled: list[Callable[..., Any]] | None = None

    @property
    def n_choices(self) -> int:
        """Number of candidate operations."""
        return len(self.search_variants)

    @contextlib.contextmanager
    def output_hook(self, hook: ContainerHook) -> Iterator[None]:
        """Context manager: inside, every call returns ``hook(self, output, args, kwargs)`` in place of
        the selected candidate's ``output`` (``args``, ``kwargs``: the call's inputs).

        The previous hook (usually none) is restored on exit.  Unlike ``register_forward_hook``, the
        hook is read inside :meth:`forward`, also when the candidates are compiled (the container is a
        graph break there).  The search estimator of ``enot.functional`` installs its paired hooks
        this way.
        """
        if not callable(hook):
            raise TypeError(f"output_hook expects a callable, got {hook!r}")
        previous, self._hook = self._hook, hook
        try:
            yield
        finally:
            self._hook = previous

    @property
    def has_output_hook(self) -> bool:
        """Whether an :meth:`output_hook` is installed."""
        return self._hook is not None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is not None:
            return self._forward_compiled(*args, **kwargs)
        output = self.search_variants[self.active_index](*args, **kwargs)
        if self._hook is not None:
            output = self._hook(self, output, args, kwargs)
        return output

    @torch.compiler.disable
    def _forward_compiled(self, *args: Any, **kwargs: Any) -> Any:
        # A graph break: the architecture (``active_index``) is read outside every compiled graph,
        # so graphs depend on candidates, never on whole architectures.
        with torch._dynamo.config.patch(recompile_limit=max(64, 4 * len(self._compiled))):
            output = self._compiled[self.active_index](*args, **kwargs)
        if self._hook is not None:
            output = self._hook(self, output, args, kwargs)
        return output

    def compile_candidates(self, **compile_kwargs: Any) -> None:
        """Compiles every candidate with ``torch.compile`` (``SearchSpaceModel.compile_paths`` calls it)."""
        self._compiled = [torch.compile(variant, **compile_kwargs) for variant in self.search_variants]

    def extra_repr(self) -> str:
        return f"n_choices={self.n_choices}, active_index={self.active_index}"
