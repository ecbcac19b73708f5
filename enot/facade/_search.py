"""`EnotSearchOptimizer` and `EnotFixedLatencySearchOptimizer`: move the architecture logits, never the weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

import enot.functional as ef
from enot.distributed import fingerprint
from enot.facade import _checks
from enot.facade._base import Closure
from enot.facade._phase import SearchSpaceOptimizer
from enot.functional.support import check_callable, check_int, check_iterable, check_number, frozen_batch_norm
from enot.models import SearchSpaceModel

__all__ = ["EnotFixedLatencySearchOptimizer", "EnotSearchOptimizer"]


class EnotSearchOptimizer(SearchSpaceOptimizer):
    """ENOT optimizer for the search phase, with batch-norm tuning.

    Every :meth:`model_step` draws two architectures ``a`` and ``b`` and a point ``s`` in [0, 1]
    (``enot.functional.next_search_sample``), selects ``a`` and runs the closure once; while it runs,
    the search space's output is ``y_a + s (y_b - y_a)`` with a term that makes its
    ``loss.backward()`` leave on the architecture logits an estimate whose expectation is exactly
    the gradient of the expected loss (``enot.functional.two_path_output``; ``docs/design.md``,
    "Search (phase 2)").  The closure may return ``None``; the loss it computes is that of the mixed
    output.  With ``estimator="first_order"`` the earlier, biased paired-candidate estimator runs
    instead (``enot.functional.paired_hooks``).  Both are ``enot.functional.Estimator`` objects, the
    batch-norm schemes ``enot.functional.BNScheme`` objects: the same ones ``enot.functional.search_step``
    uses.  The weights are frozen while the closure runs (``requires_grad`` off, restored after) and
    their ``.grad`` is cleared before :meth:`step`, so neither they nor their optimizer state change;
    the wrapped optimizer should hold ``search_space.architecture_parameters()``.

    Args:
        search_space: Search space model to optimize.
        optimizer: PyTorch optimizer which will be wrapped by ENOT optimizer.
        bn_tune_dataloader: Dataloader to tune batch norms during search and validation (use the
            one used in training); ``None`` (default) suppresses batch-norm tuning.
        bn_tune_batches: Batches to tune batch norm at each search step (default 10).
        bn_validation_tune_batches: Batches to tune batch norm before each validation (default 50).
        sample_to_model_inputs: Maps dataloader items to ``(args, kwargs)`` of the model.
        **options: ``seed``: integer seed of the architecture sampler (default 0; the same on every
            rank); ``estimator``: ``"two_path"`` (default), ``"first_order"`` or another name of
            ``enot.functional.ESTIMATORS``; ``reducer``: ``"auto"`` (default), ``None`` or an
            ``enot.distributed.GradientReducer``:
            across processes the logits' gradients and the tuned batch-norm statistics are averaged
            over ranks, so every rank keeps the same probabilities (``docs/distributed.md``; call
            :meth:`prepare_validation_model` on every rank); ``bn_scheme``: ``"fresh"`` (default) tunes
            both sides of every comparison from scratch on ``bn_tune_batches`` new batches per step;
            ``"cached"`` keeps each architecture's statistics and adds one new batch per step (the same
            for both sides) to each side's cumulative average until it averages ``bn_tune_batches``
            batches, then reuses it (``enot.functional.cached_tuned_buffers``; one process only; the
            cache is dropped when the weights change and is not saved in ``state_dict``, so a resumed
            search is not bit-identical);
            ``validation_top_k`` (default 1) and
            ``validation_score`` (a callable ``search_space -> float``, higher is better; needed when
            ``validation_top_k > 1``): what :meth:`prepare_validation_model` calls the best
            architecture (see there).

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpaceModel`` (also when it is wrapped in
            ``DistributedDataParallel``) or ``optimizer`` not a ``torch.optim.Optimizer``.
        ValueError: On an unknown option, estimator or bn_scheme, validation_top_k > 1 without
            validation_score, or a negative batch count, or if ``optimizer`` holds none of
            ``search_space.architecture_parameters()`` (it would learn nothing; also in
            :meth:`add_param_group`).
    """

    _options: tuple[str, ...] = ("bn_scheme", "estimator", "reducer", "seed", "validation_score", "validation_top_k")

    def __init__(
        self,
        search_space: SearchSpaceModel,
        optimizer: torch.optim.Optimizer,
        bn_tune_dataloader: Iterable[Any] | None = None,
        bn_tune_batches: int = 10,
        bn_validation_tune_batches: int = 50,
        sample_to_model_inputs: ef.InputsFn = ef.default_sample_to_model_inputs,
        **options: Any,
    ) -> None:
        super().__init__(search_space, optimizer, options)
        where = f"{type(self).__name__}: "
        if bn_tune_dataloader is not None:
            check_iterable(type(self).__name__, "bn_tune_dataloader", bn_tune_dataloader)
        self._bn_tune_dataloader = bn_tune_dataloader
        self._bn_tune_batches = check_int(bn_tune_batches, "bn_tune_batches", where=where)
        self._bn_validation_tune_batches = check_int(bn_validation_tune_batches, "bn_validation_tune_batches", where=where)
        self._sample_to_model_inputs = check_callable(sample_to_model_inputs, "sample_to_model_inputs", where=where)
        self._estimator = ef.get_estimator(options.get("estimator", "two_path"), where=where)
        self._validation_top_k = check_int(options.get("validation_top_k", 1), "validation_top_k", minimum=1, where=where)
        self._validation_score = options.get("validation_score")
        if self._validation_score is not None:
            check_callable(self._validation_score, "validation_score", where=where)
        elif self._validation_top_k > 1:
            raise ValueError(f"{where}validation_top_k={self._validation_top_k} needs a validation_score "
                             "(a callable search_space -> float, higher is better) to re-rank the candidates")
        self.last_validation_pick: ef.ValidationPick | None = None
        self._bn_scheme = ef.BNScheme.parse(options.get("bn_scheme", "fresh"), self._bn_tune_batches, where=where)
        self._bn_cache: dict | None = None  # the cache of self._bn_scheme (BNScheme.tune)
        self._bn_cache_weights: tuple | None = None  # the weights (pointer, version) the cache was tuned with
        self._path_apply: ef.Apply | None = None  # ef.make_apply(search_space), made on first use
        self._bn_iterator: Iterator[Any] | None = None
        self._bn_position = 0  # items taken from _bn_iterator (saved, so a resumed run continues in place)
        # Items a failed step took, given again first (with the position after each): a retry tunes on them.
        self._bn_replay: list[tuple[Any, int]] = []
        self._bn_taken: list[tuple[Any, int]] = []  # taken since the step began
        self.last_sample: Any = None  # the estimator's own sample (ef.TwoPathSample, ef.FirstOrderSample)

    def _check_params(self, groups: list[Any], new_group: bool = False) -> None:
        ss = self.search_space
        _checks.check_param_groups(
            type(self).__name__, groups,
            expected=ss.architecture_parameters(), expected_name="search_space.architecture_parameters()",
            other=ss.model_parameters(),
            other_name="search_space.model_parameters() (the weights, which search never changes)", new_group=new_group,
        )

    # ------------------------------------------------------------------------------ properties
    @property
    def bn_tune_batches(self) -> int:
        """The number of batch-norm tune batches for each search step."""
        return self._bn_tune_batches

    @property
    def bn_validation_tune_batches(self) -> int:
        """The number of batch-norm tune batches before validation."""
        return self._bn_validation_tune_batches

    # ------------------------------------------------------------------------ ENOT's own state
    def _enot_state(self) -> dict[str, Any]:
        return {**super()._enot_state(), "bn_position": self._bn_position}

    def _load_enot_state(self, state: dict[str, Any]) -> None:
        super()._load_enot_state(state)
        # Continue the batch-norm loader where the saved run was: a fresh pass, advanced by the items
        # the saved run had taken from its pass (exact for loaders that give the same order each pass).
        position = int(state.get("bn_position", 0))
        self._bn_iterator, self._bn_position, self._bn_replay = None, 0, []
        if position and self._bn_tune_dataloader is not None:
            self._bn_iterator = iter(self._bn_tune_dataloader)
            for _ in range(position):
                next(self._bn_iterator, None)
            self._bn_position = position

    # ------------------------------------------------------------- a failed step changes nothing
    def _snapshot(self) -> dict[str, Any]:
        self._bn_taken = []
        return {**super()._snapshot(), "last_sample": self.last_sample, "bn_position": self._bn_position,
                "bn_cache": (self._bn_cache, self._bn_cache_weights)}  # a new dict per step: no copy needed

    def _restore(self, snapshot: dict[str, Any]) -> None:
        super()._restore(snapshot)
        self.last_sample = snapshot["last_sample"]
        self._bn_cache, self._bn_cache_weights = snapshot["bn_cache"]
        # The batch-norm items the failed step took come again first, in the same order.
        self._bn_replay = self._bn_taken + self._bn_replay
        self._bn_taken = []
        self._bn_position = snapshot["bn_position"]

    # ------------------------------------------------------------------------- batch norm
    def _tuning(self, batches: int) -> bool:
        return self._bn_tune_dataloader is not None and batches > 0

    def _next_bn_batches(self, count: int) -> list[Any]:
        """The next ``count`` dataloader items, cycling through the loader."""
        items: list[Any] = []
        restarted = False
        while len(items) < count:
            if self._bn_replay:
                item, self._bn_position = self._bn_replay.pop(0)
                items.append(item)
                self._bn_taken.append((item, self._bn_position))
                continue
            if self._bn_iterator is None:
                self._bn_iterator, self._bn_position = iter(self._bn_tune_dataloader), 0
            try:
                items.append(next(self._bn_iterator))
                self._bn_position += 1
                self._bn_taken.append((items[-1], self._bn_position))
                restarted = False
            except StopIteration:
                if restarted:
                    raise ValueError(
                        f"{type(self).__name__}: bn_tune_dataloader yields no batches (it is empty, or a one-pass "
                        "iterator such as a generator that is exhausted: give a DataLoader or a list); the "
                        "batch-norm statistics are unchanged"
                    ) from None
                self._bn_iterator, restarted = None, True
        return items

    def _tune_bn(self, architecture: list[int], batches: list[Any]) -> None:
        """Recomputes the path's batch-norm statistics in place through ``enot.functional.bn_tune``."""
        buffers = dict(self.search_space.named_buffers())
        new = self._tuned(architecture, batches)
        tuned = sorted(name for name, value in new.items() if value is not buffers[name])
        with torch.no_grad():
            for name in tuned:
                buffers[name].copy_(new[name])

    def _tuned(self, architecture: list[int], batches: list[Any]) -> dict[str, torch.Tensor]:
        """The search space's buffers with ``architecture``'s batch-norm statistics recomputed on
        ``batches`` (a new dict: the module is not changed), averaged across ranks with a reducer."""
        ss = self.search_space
        params = {n: p.detach() for n, p in ss.named_parameters()}
        buffers = dict(ss.named_buffers())
        new = ef.bn_tune(
            ss, params, buffers, batches, architecture=architecture, sample_to_model_inputs=self._sample_to_model_inputs,
        )
        if self._reducer is not None:
            tuned = {name: value for name, value in new.items() if value is not buffers[name]}
            new.update(self._reduce_tuned(tuned))
        return new

    # ------------------------------------------------------------------------------ sampling
    def _latency_bound(self) -> tuple[ef.LatencyTable | None, float | None]:
        return None, None

    @contextlib.contextmanager
    def _frozen_weights(self) -> Iterator[None]:
        weights = [p for p in self.search_space.model_parameters() if p.requires_grad]
        try:
            for p in weights:
                p.requires_grad_(False)
            yield
        finally:
            for p in weights:
                p.requires_grad_(True)

    def _run_closure(self, closure: Closure) -> Any:
        """One estimate, as ``ef.search_step`` makes it: the estimator draws the sample, the batch-norm
        scheme tunes both sides, and the closure runs inside the estimator's output mixing."""
        ss = self.search_space
        table, bound = self._latency_bound()
        logits = tuple(ss.architecture_parameters())
        self._key, sample = self._estimator.draw(self._key, logits, table, bound)
        self._note_architectures((sample.architecture, sample.alternatives))
        ss.sample(sample.architecture)
        params = {n: p.detach() for n, p in ss.named_parameters()}
        buffers = dict(ss.named_buffers())
        tuning = self._tuning(self._bn_tune_batches)
        other_buffers = self._tune_sides(sample, params, buffers) if tuning else None
        frozen_bn = frozen_batch_norm(ss) if tuning else contextlib.nullcontext()
        installed = self._estimator.installed(
            self._search_apply(), params, buffers if other_buffers is None else other_buffers, logits, sample
        )
        with self._frozen_weights(), frozen_bn, installed:
            result = closure()
        self._raise_if_not_finite(result, f"search step {self._step_count}, architecture {sample.architecture}", "logits")
        self.last_sample = sample
        return result

    def _search_apply(self) -> ef.Apply:
        """``ef.make_apply(search_space)`` (compiled when the space's paths are), made once."""
        ss = self.search_space
        if self._path_apply is None or self._path_apply.compiled != ss.paths_compiled:
            self._path_apply = ef.make_apply(ss, compile=ss.paths_compiled)
        return self._path_apply

    def _tune_sides(
        self, sample: Any, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor] | None:
        """Both sides' batch-norm statistics through the scheme (``BNScheme.tune``, as ``ef.search_step``):
        path ``a``'s written into the search space, the other side's returned (``None`` when none runs)."""
        ss = self.search_space
        reduce = None if self._reducer is None else self._reduce_tuned
        self._bn_scheme.check_reduce(reduce, where=f"{type(self).__name__}: ")
        # The storage's identity, not data_ptr(): data_ptr() asks for writable memory, which would copy the
        # failure snapshot's copy-on-write weights (BaseEnotOptimizer._snapshot) and change the pointer.
        weights = tuple((p.untyped_storage()._cdata, p._version) for p in ss.model_parameters())
        if weights != self._bn_cache_weights:  # statistics tuned with other weights are stale
            self._bn_cache, self._bn_cache_weights = None, weights
        items = self._next_bn_batches(self._bn_scheme.items_per_step)
        other = None if self._estimator.trivial(sample) else self._estimator.other_architecture(sample)
        new, other_buffers, self._bn_cache = self._bn_scheme.tune(
            ss, params, buffers, sample.architecture, other, items, self._bn_cache,
            sample_to_model_inputs=self._sample_to_model_inputs, reduce_buffers=reduce,
        )
        with torch.no_grad():
            for name, value in new.items():
                if value is not buffers[name]:
                    buffers[name].copy_(value)
        return other_buffers

    def _reduce_tuned(self, tuned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every rank tuned on its own batches: the statistics averaged (counters summed) over ranks."""
        assert self._reducer is not None
        self._reducer.agree(fingerprint(sorted(tuned)), what="tuned batch-norm buffers", step=self._step_count)
        return self._reducer.reduce_buffers(tuned, sum_counters=True)

    def _apply(self) -> None:
        for p in self.search_space.model_parameters():
            p.grad = None  # weights and their optimizer state never change during search
        self._optimizer.step()

    # ---------------------------------------------------------------------------- validation
    def _best_architecture(self) -> list[int]:
        return self.search_space.best_architecture_int

    def prepare_validation_model(self, architecture_indices: list[int] | None = None) -> list[int]:
        """Prepares the search space for validation.

        Selects the current best architecture (or ``architecture_indices``), tunes its batch norms on
        ``bn_validation_tune_batches`` batches of ``bn_tune_dataloader`` (when given) and leaves the
        search space on it.  Do not change the selected architecture until validation is finished.

        The best architecture (``enot.functional.validation_pick``): among the ``validation_top_k``
        most probable architectures (under the latency bound for the fixed-latency optimizer; exact,
        ``enot.functional.top_k_architectures``), the one of highest ``validation_score(search_space)``,
        the more probable on a tie; each candidate is scored with the search space selected on it and
        its batch norms tuned on the same ``bn_validation_tune_batches`` batches (when tuning), without
        gradients.  With ``validation_top_k=1`` (default) it is the most probable architecture and no
        score is computed.  The candidates and scores are kept in :attr:`last_validation_pick`.

        Args:
            architecture_indices: Custom architecture to validate; ``None`` selects the best one.

        Returns:
            The architecture selected for validation, as ``list[int]``.

        Raises:
            ValueError: If ``architecture_indices`` does not fit the search space.
        """
        ss = self.search_space
        tuning = self._tuning(self._bn_validation_tune_batches)
        batches = None
        if architecture_indices is None and self._validation_top_k > 1:
            batches = self._next_bn_batches(self._bn_validation_tune_batches) if tuning else None
            table, bound = self._latency_bound()

            def score(candidate: list[int]) -> float:
                ss.sample(candidate)
                if batches is not None:
                    self._tune_bn(candidate, batches)
                with torch.no_grad():
                    return float(self._validation_score(ss))

            pick = ef.validation_pick(tuple(ss.architecture_parameters()), table, bound, self._validation_top_k, score)
            self.last_validation_pick = pick
            architecture = pick.architecture
        elif architecture_indices is None:
            architecture = self._best_architecture()
        else:
            architecture = ss.normalize_architecture(architecture_indices)
        self._check_validation_architecture(architecture)
        ss.sample(architecture)
        if tuning:
            self._tune_bn(architecture, batches if batches is not None else
                          self._next_bn_batches(self._bn_validation_tune_batches))
        return list(architecture)

    def _check_validation_architecture(self, architecture: list[int]) -> None:
        """Subclasses refuse architectures the search could not have picked."""


class EnotFixedLatencySearchOptimizer(EnotSearchOptimizer):
    """ENOT optimizer for the search phase under a latency upper bound.

    Every sampled path is drawn from the architecture distribution restricted exactly to the
    architectures within ``max_latency_value`` (``enot.functional.sample_feasible_architecture``),
    and :meth:`prepare_validation_model` selects the most probable architecture within it
    (``enot.functional.select_architecture``, an exact multiple-choice knapsack), so no sampled or
    selected architecture exceeds the bound.

    Args:
        search_space: Search space model to optimize (with latency: ``enot.latency.initialize_latency``).
        optimizer: PyTorch optimizer to be replaced with the ENOT optimizer.
        max_latency_value: Maximal latency of every architecture sampled or selected.
        bn_tune_dataloader, bn_tune_batches, bn_validation_tune_batches, sample_to_model_inputs:
            As in :class:`EnotSearchOptimizer`.
        **options: ``seed`` (default 0); ``latency_loss_weight`` (default 1.0): weight of the term
            :meth:`modify_loss` adds.

    Raises:
        RuntimeError: At the first step, :meth:`modify_loss` or :meth:`prepare_validation_model` that
            needs latencies, if the search space has none (call ``enot.latency.initialize_latency``).
            The optimizer may be built before the space has latency.
        TypeError: If ``max_latency_value`` is not a real number or a one-element tensor (a 0-d tensor,
            as ``search_space.forward_latency`` returns, is accepted).
        ValueError: If ``max_latency_value`` is NaN or infinite (an infinite bound is no bound: use
            :class:`EnotSearchOptimizer`), or below the search space's minimum latency (stating it): at
            construction when the space has latency then, else where its latency is first used.
    """

    _options = ("bn_scheme", "estimator", "latency_loss_weight", "reducer", "seed", "validation_score", "validation_top_k")

    def __init__(
        self,
        search_space: SearchSpaceModel,
        optimizer: torch.optim.Optimizer,
        max_latency_value: float,
        bn_tune_dataloader: Iterable[Any] | None = None,
        bn_tune_batches: int = 10,
        bn_validation_tune_batches: int = 50,
        sample_to_model_inputs: ef.InputsFn = ef.default_sample_to_model_inputs,
        **options: Any,
    ) -> None:
        super().__init__(
            search_space, optimizer, bn_tune_dataloader, bn_tune_batches, bn_validation_tune_batches,
            sample_to_model_inputs, **options,
        )
        name = type(self).__name__
        self._max_latency_value = _checks.latency_bound(name, "max_latency_value", max_latency_value)
        self._checked_container: Any = None  # the latency container whose minimum was checked last
        if getattr(search_space, "latency_type", None) is not None:
            self._table()  # the bound is checked now when the space has latency, else at first use
        self._latency_loss_weight = check_number(
            options.get("latency_loss_weight", 1.0), "latency_loss_weight", finite=False, where=f"{name}: "
        )

    @property
    def max_latency_value(self) -> float:
        """Maximal latency value (upper bound) for the search process."""
        return self._max_latency_value

    def _table(self) -> ef.LatencyTable:
        """The space's latency table; checks that it exists and that the bound is reachable.

        Construction may precede latency (``ResolutionSearcherWithFixedLatencyIterator`` initialises it
        per resolution), so the checks run here, at the first step that needs latencies, and again
        whenever the space's latency container is replaced.
        """
        name = type(self).__name__
        ss = self.search_space
        if getattr(ss, "latency_type", None) is None:
            raise RuntimeError(
                f"{name}: the search space has no latency; call enot.latency.initialize_latency(latency_type, "
                "search_space, inputs) (or search_space.apply_latency_container(container)) first"
            )
        container = ss.get_latency_container()
        table = container.table(dtype=torch.float64)
        if container is not self._checked_container:
            ef.check_latency_bound(self._max_latency_value, table, name="max_latency_value", where=f"{name}: ")
            self._checked_container = container
        return table

    def _latency_bound(self) -> tuple[ef.LatencyTable | None, float | None]:
        return self._table(), self._max_latency_value

    def modify_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss plus the term that keeps the architecture distribution inside the bound.

        Adds ``enot.functional.latency_penalty(logits, table, max_latency_value, latency_loss_weight)``:
        ``latency_loss_weight * relu(E[latency] / max_latency_value - 1)`` with ``E[latency]`` the
        expected latency (differentiable in the logits; a bound of 0 is measured against the largest
        latency instead), zero while the expected latency is within the bound, so it only pulls back
        a distribution that drifted above it (``ef.search_step(..., latency_loss_weight=...)`` adds
        the same).  Sampling is restricted to the bound anyway; this keeps the unrestricted
        distribution, and hence the restricted one's acceptance, close to the feasible set.
        """
        logits = tuple(self.search_space.architecture_parameters())
        penalty = ef.latency_penalty(logits, self._table(), self._max_latency_value, self._latency_loss_weight)
        return loss + penalty.to(loss.dtype if isinstance(loss, torch.Tensor) else penalty.dtype)

    def _best_architecture(self) -> list[int]:
        return ef.select_architecture(tuple(self.search_space.architecture_parameters()), self._table(), self._max_latency_value)

    def _check_validation_architecture(self, architecture: list[int]) -> None:
        latency = float(ef.architecture_latency(architecture, self._table()))
        if latency > self._max_latency_value:
            raise ValueError(
                f"{type(self).__name__}.prepare_validation_model: architecture {architecture} has latency "
                f"{latency!r}, above max_latency_value={self._max_latency_value!r}; give one within the bound "
                "or None for the best one"
            )
