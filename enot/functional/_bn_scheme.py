"""Batch-norm schemes of the search: how both sides of a comparison get their statistics.

A :class:`BNScheme` is made once, from the user's option (:meth:`BNScheme.parse`) or directly:

* :meth:`BNScheme.fresh` ``(n)``: each side's statistics recomputed from reset on ``n`` new
  dataloader items at every step (``bn_scheme="fresh"``, the default);
* :meth:`BNScheme.cached` ``(target, size)``: each architecture's statistics kept in a cache (the
  ``size`` most recently used) and refined with one new item per step until they average ``target``
  items, then reused (``bn_scheme="cached"``; :func:`cached_tuned_buffers`).

Both faces of the search step call :meth:`BNScheme.tune` and nothing else: ``ef.search_step`` on
its trees, ``EnotSearchOptimizer`` on the module's tensors (then it writes path ``a``'s statistics
into the module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from enot.functional import _bn
from enot.functional._types import InputsFn, ReduceFn, default_sample_to_model_inputs
from enot.functional._validate import check_int

__all__ = ["BNCacheEntry", "BNScheme", "BN_CACHE_SIZE", "BN_SCHEMES", "CachedBN", "FreshBN", "cached_tuned_buffers"]

BN_CACHE_SIZE = 1024  # architectures whose tuned statistics a "cached" search keeps (least recently used dropped)


class BNCacheEntry(NamedTuple):
    """Batch-norm statistics of one architecture's path, tuned over ``batches`` batches so far."""

    batches: int
    stats: dict[str, torch.Tensor]


BNCache = Mapping[tuple[int, ...], BNCacheEntry]


def cached_tuned_buffers(
    search_space: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    architecture: Sequence[int],
    bn_batches: Sequence[Any],
    cache: BNCache | None,
    target: int,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
    cache_size: int = BN_CACHE_SIZE,
) -> tuple[dict[str, torch.Tensor], dict[tuple[int, ...], BNCacheEntry]]:
    """``buffers`` with ``architecture``'s batch-norm statistics from the cache, refined on ``bn_batches``.

    The statistics of an architecture are the cumulative average (``momentum=None``) over every batch
    it was tuned on so far: a first visit tunes from reset statistics on ``bn_batches``; a later visit
    continues the same average with ``bn_batches`` (``bn_tune(reset=False)``: the batch counters make
    it exactly the average over all those batches) while it holds fewer than ``target`` batches, and
    reuses it unchanged after.  Returns the buffers (inputs never mutated) and the new cache (a new
    dict, this architecture most recent; the least recently used beyond ``cache_size`` dropped).
    """
    key = tuple(int(k) for k in architecture)
    cache = dict(cache or {})
    entry = cache.pop(key, None)
    if entry is None:
        tuned = _bn.bn_tune(search_space, params, buffers, bn_batches, architecture=list(key),
                            sample_to_model_inputs=sample_to_model_inputs)
        entry = BNCacheEntry(len(bn_batches), {n: tuned[n] for n in _bn.batch_norm_buffer_names(search_space, key)
                                               if n in tuned})
    elif entry.batches < target and bn_batches:
        tuned = _bn.bn_tune(search_space, params, {**buffers, **entry.stats}, bn_batches, architecture=list(key),
                            sample_to_model_inputs=sample_to_model_inputs, reset=False)
        entry = BNCacheEntry(entry.batches + len(bn_batches), {n: tuned[n] for n in entry.stats})
    cache[key] = entry
    while len(cache) > cache_size:
        del cache[next(iter(cache))]
    return {**buffers, **entry.stats}, cache


class BNScheme:
    """How a search step tunes the batch-norm statistics of both sides of a comparison.

    Make one with :meth:`fresh`, :meth:`cached` or :meth:`parse`.  Subclasses implement
    :meth:`tune`, :meth:`check_reduce` and set :attr:`items_per_step`.

    Attributes:
        name: The user's name of the scheme (``"fresh"``, ``"cached"``).
        items_per_step: Dataloader items the facade takes for one step.
    """

    name: str = ""
    items_per_step: int = 0

    @staticmethod
    def fresh(n: int) -> FreshBN:
        """Both sides recomputed from reset on ``n`` new items per step."""
        return FreshBN(check_int(n, "bn_tune_batches"))

    @staticmethod
    def cached(target: int, size: int = BN_CACHE_SIZE) -> CachedBN:
        """Per architecture, statistics refined with one new item per step up to ``target`` items, then
        reused; the ``size`` most recently used architectures are kept."""
        return CachedBN(check_int(target, "bn_tune_batches"), check_int(size, "size", minimum=1))

    @staticmethod
    def parse(scheme: str | BNScheme, batches: int, *, where: str = "") -> BNScheme:
        """The scheme the user named (``"fresh"`` or ``"cached"``) with ``batches`` tune batches; a
        :class:`BNScheme` is returned as is.

        Raises:
            ValueError: On another name.
        """
        if isinstance(scheme, BNScheme):
            return scheme
        if isinstance(scheme, str) and scheme in _SCHEMES:
            return _SCHEMES[scheme](batches)
        raise ValueError(f"{where}unknown bn_scheme {scheme!r}; use one of {list(_SCHEMES)}")

    def check_reduce(self, reduce_buffers: ReduceFn | None, *, where: str = "") -> None:
        """Raises ``ValueError`` if the scheme cannot average its statistics across processes."""

    def tune(
        self,
        search_space: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        architecture: Sequence[int],
        other: Sequence[int] | None,
        items: Sequence[Any],
        cache: BNCache | None,
        *,
        sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
        reduce_buffers: ReduceFn | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, BNCache | None]:
        """Tunes both sides from ``buffers`` on ``items``.

        Args:
            search_space: The search space.
            params: Weights; only read.
            buffers: The buffers before tuning; never mutated.
            architecture: Path ``a``.
            other: The other side's path (``Estimator.other_architecture``), ``None`` when no other
                side runs.
            items: Dataloader items.
            cache: The cache the scheme keeps between steps (``None``: empty).
            sample_to_model_inputs: Maps one item to ``(args, kwargs)``.
            reduce_buffers: Across processes, applied to each side's freshly tuned statistics.

        Returns:
            ``(buffers_a, other_buffers, cache)``: full buffer dicts with ``a``'s (and the other side's;
            ``None`` when ``other`` is) statistics, and the new cache.
        """
        raise NotImplementedError


class FreshBN(BNScheme):
    """Each side recomputed from reset at every step (``BNScheme.fresh(n)``)."""

    name = "fresh"

    def __init__(self, n: int) -> None:
        self.items_per_step = n

    def __repr__(self) -> str:
        return f"BNScheme.fresh({self.items_per_step})"

    def tune(
        self,
        search_space: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        architecture: Sequence[int],
        other: Sequence[int] | None,
        items: Sequence[Any],
        cache: BNCache | None,
        *,
        sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
        reduce_buffers: ReduceFn | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, BNCache | None]:
        def tuned(path: Sequence[int]) -> dict[str, torch.Tensor]:
            new = _bn.bn_tune(search_space, params, buffers, items, architecture=list(path),
                              sample_to_model_inputs=sample_to_model_inputs)
            if reduce_buffers is not None:
                names = [n for n in _bn.batch_norm_buffer_names(search_space, path) if n in new]
                new.update(reduce_buffers({n: new[n] for n in names}))
            return new

        return tuned(architecture), None if other is None else tuned(other), cache


class CachedBN(BNScheme):
    """Statistics kept per architecture and refined up to ``target`` items (``BNScheme.cached(target, size)``)."""

    name = "cached"
    items_per_step = 1

    def __init__(self, target: int, size: int = BN_CACHE_SIZE) -> None:
        self.target, self.size = target, size

    def __repr__(self) -> str:
        return f"BNScheme.cached({self.target}, {self.size})"

    def check_reduce(self, reduce_buffers: ReduceFn | None, *, where: str = "") -> None:
        if reduce_buffers is not None:
            raise ValueError(f"{where}bn_scheme='cached' does not support reduce_buffers (several processes); "
                             "it runs in one process only; use 'fresh'")

    def tune(
        self,
        search_space: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        architecture: Sequence[int],
        other: Sequence[int] | None,
        items: Sequence[Any],
        cache: BNCache | None,
        *,
        sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
        reduce_buffers: ReduceFn | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, BNCache | None]:
        self.check_reduce(reduce_buffers)
        new, cache = cached_tuned_buffers(search_space, params, buffers, architecture, items, cache, self.target,
                                          sample_to_model_inputs, self.size)
        other_buffers = None
        if other is not None:
            other_buffers, cache = cached_tuned_buffers(search_space, params, buffers, other, items, cache, self.target,
                                                        sample_to_model_inputs, self.size)
        return new, other_buffers, cache


# The registry of user names: one line per scheme, ``name -> factory(bn_tune_batches)``.
_SCHEMES = {"fresh": BNScheme.fresh, "cached": BNScheme.cached}
BN_SCHEMES = tuple(_SCHEMES)
