"""`EvolutionSearch`: ENOT 3.4's evolutionary search over a trained search space, thin over the functional core."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

import enot.functional as ef
from enot.distributed import check_not_ddp
from enot.functional.support import check_callable, check_evolution_config, check_int
from enot.models import SearchSpaceModel

__all__ = ["EvolutionSearch"]


class EvolutionSearch:
    """Evolutionary search for the best architecture of a trained search space, under a hard latency bound.

    Runs :func:`enot.functional.evolution_search`: an initial population drawn uniformly from the
    architectures within ``max_latency_value``, then ``search_steps`` generations that keep the best
    ``parents_ratio`` of the population and add mutations and crossovers of them.  Mutation and
    crossover draw exactly from the architectures within the bound
    (:func:`enot.functional.sample_feasible_architecture`), so no architecture above it is ever
    scored or returned, and nothing is retried for latency.  Each distinct architecture is scored
    once: it is selected in ``search_space``, its batch-norm statistics are recomputed on the first
    ``bn_tune_batches`` batches of ``bn_tune_dataloader`` (the same batches for every architecture),
    the search space is put in evaluation mode and ``evaluate_function(search_space)`` is called.
    Afterwards the search space is as it was before (weights, buffers, selected architecture and
    train/eval modes), also when ``evaluate_function`` raises.

    Args:
        search_space: A trained (pretrained) :class:`~enot.models.SearchSpaceModel`.
        evaluate_function: ``evaluate_function(search_space) -> float``: the metric of the selected
            architecture, higher is better (e.g. validation accuracy, or minus the loss).
        search_steps: Generations after the initial population (``>= 0``); ``evaluate_function`` runs
            at most ``population_size + search_steps * (population_size - parents)`` times.
        max_latency_value: Latency bound (needs ``enot.latency.initialize_latency`` first): a number, a
            numpy number or a one-element tensor (``search_space.forward_latency``); ``None`` or ``inf``:
            no bound.
        population_size: Architectures per generation (default 20, at least 2).
        seed: Seed of the evolution's random key (default 0); the same seed and a deterministic
            ``evaluate_function`` give the same search.
        bn_tune_dataloader: Dataloader whose first ``bn_tune_batches`` items recalibrate batch norm
            before each evaluation (use the training loader); ``None``: no recalibration.
        bn_tune_batches: Items taken from ``bn_tune_dataloader`` (default 10).
        sample_to_model_inputs: Maps dataloader items to ``(args, kwargs)`` of the model.
        parents_ratio, mutation_ratio, mutation_probability, novelty_tries: As in
            :class:`enot.functional.EvolutionConfig` (defaults 0.25, 0.5, 0.2, 10).

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpaceModel`` (also when wrapped in
            ``DistributedDataParallel``) or ``evaluate_function`` is not callable.
        RuntimeError: If ``max_latency_value`` is given and the search space has no latency.
        ValueError: If ``max_latency_value`` is below the search space's minimum latency (stating it),
            or another argument is out of range.
    """

    def __init__(
        self,
        search_space: SearchSpaceModel,
        evaluate_function: Callable[[SearchSpaceModel], float],
        search_steps: int,
        *,
        max_latency_value: float | None = None,
        population_size: int = 20,
        seed: int = 0,
        bn_tune_dataloader: Iterable[Any] | None = None,
        bn_tune_batches: int = 10,
        sample_to_model_inputs: ef.InputsFn = ef.default_sample_to_model_inputs,
        parents_ratio: float = 0.25,
        mutation_ratio: float = 0.5,
        mutation_probability: float = 0.2,
        novelty_tries: int = 10,
    ) -> None:
        name = type(self).__name__
        where = f"{name}: "
        check_not_ddp(name, search_space)
        if not isinstance(search_space, SearchSpaceModel):
            raise TypeError(
                f"{name} expects a SearchSpaceModel, got {type(search_space).__name__}; "
                "wrap your model with enot.models.SearchSpaceModel"
            )
        self._search_space = search_space
        self._evaluate_function = check_callable(evaluate_function, "evaluate_function", where=where)
        self._search_steps = check_int(search_steps, "search_steps", where=where)
        self._seed = check_int(seed, "seed", where=where)
        self._bn_tune_dataloader = bn_tune_dataloader
        self._bn_tune_batches = check_int(bn_tune_batches, "bn_tune_batches", where=where)
        self._sample_to_model_inputs = check_callable(sample_to_model_inputs, "sample_to_model_inputs", where=where)
        try:
            self._config = check_evolution_config(ef.EvolutionConfig(
                population_size, parents_ratio, mutation_ratio, mutation_probability, novelty_tries
            ))
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}{error}") from None
        self._table: ef.LatencyTable | None = None
        if getattr(search_space, "latency_type", None) is not None:
            self._table = search_space.get_latency_container().table(dtype=torch.float64)
        self._max_latency_value: float | None = None
        if max_latency_value is not None and ef.check_latency_bound(
            max_latency_value, name="max_latency_value", where=where
        ) == math.inf:
            max_latency_value = None  # no bound, as everywhere in enot.functional
        if max_latency_value is not None:
            if self._table is None:
                raise RuntimeError(
                    f"{name}: max_latency_value needs the search space's latency; call "
                    "enot.latency.initialize_latency(latency_type, search_space, inputs) "
                    "(or search_space.apply_latency_container(container)) first"
                )
            self._max_latency_value = ef.check_latency_bound(
                max_latency_value, self._table, name="max_latency_value", where=where
            )

    # ------------------------------------------------------------------------------ properties
    @property
    def search_space(self) -> SearchSpaceModel:
        """Search space passed to the constructor."""
        return self._search_space

    @property
    def search_steps(self) -> int:
        """Generations after the initial population."""
        return self._search_steps

    @property
    def max_latency_value(self) -> float | None:
        """The latency bound (``None``: none)."""
        return self._max_latency_value

    @property
    def population_size(self) -> int:
        """Architectures per generation."""
        return self._config.population_size

    # ---------------------------------------------------------------------------------- search
    def _bn_batches(self) -> list[Any]:
        if self._bn_tune_dataloader is None or self._bn_tune_batches == 0:
            return []
        batches = list(itertools.islice(iter(self._bn_tune_dataloader), self._bn_tune_batches))
        if not batches:
            raise ValueError(f"{type(self).__name__}: bn_tune_dataloader yields no batches")
        return batches

    @contextlib.contextmanager
    def _restored(self) -> Iterator[dict[str, torch.Tensor]]:
        """Yields a copy of the buffers; buffers, selected architecture and modes are restored after."""
        ss = self._search_space
        saved = {n: b.detach().clone() for n, b in ss.named_buffers()}
        architecture = ss.forward_architecture
        modes = {m: m.training for m in ss.modules()}
        try:
            yield saved
        finally:
            with torch.no_grad():
                for n, b in ss.named_buffers():
                    b.copy_(saved[n])
            ss.sample(architecture)
            for m, mode in modes.items():
                m.training = mode

    def find_best_arch(self, return_metrics: bool = False) -> list[int] | tuple[list[int], dict[str, Any]]:
        """Runs the search and returns the best architecture found.

        Args:
            return_metrics: Also return a dict of metrics: ``"metric"`` (the best architecture's
                ``evaluate_function`` value), ``"latency"`` (its latency, ``None`` without a latency
                table), ``"evaluations"`` (calls of ``evaluate_function``), ``"best_metric_per_step"``
                (best value so far after the initial population and after each generation),
                ``"architectures"`` and ``"metrics"`` (every architecture scored and its value, in order).

        Returns:
            The architecture (``list[int]``), or ``(architecture, metrics)``.

        Raises:
            TypeError: If ``evaluate_function`` returns something other than a number.
            FloatingPointError: If it returns NaN.
        """
        ss = self._search_space
        batches = self._bn_batches()
        params = {n: p.detach() for n, p in ss.named_parameters()}
        with self._restored() as buffers:

            def metric(architecture: list[int], tuned: dict[str, torch.Tensor]) -> float:
                with torch.no_grad():
                    for n, b in ss.named_buffers():
                        b.copy_(tuned[n])
                ss.sample(architecture)
                ss.eval()
                return self._evaluate_function(ss)

            evaluate = ef.bn_tuned_evaluation(
                ss, params, buffers, batches, metric, sample_to_model_inputs=self._sample_to_model_inputs
            )
            result = ef.evolution_search(
                ef.random.key(self._seed), evaluate, self._search_steps, ss.layout.n_choices,
                table=self._table, max_latency=self._max_latency_value, config=self._config,
            )
        architecture = list(result.architecture)
        if not return_metrics:
            return architecture
        metrics = {
            "metric": result.score,
            "latency": None if self._table is None else float(ef.architecture_latency(architecture, self._table)),
            "evaluations": int(result.state.evaluated.shape[0]),
            "best_metric_per_step": list(result.best_scores),
            "architectures": result.state.evaluated.tolist(),
            "metrics": result.state.evaluated_scores.tolist(),
        }
        return architecture, metrics
