"""Pure evolutionary search over a trained search space, under a hard latency bound.

A population of architectures is scored by a user function (higher is better); every generation
keeps the best ``parents`` of it and fills the rest with mutations and crossovers of them (the
evolution of Guo et al. 2020, "Single Path One-Shot", and Cai et al. 2020, "Once-for-All").  Every
architecture it proposes is drawn by :func:`enot.functional.sample_feasible_architecture` from a
distribution restricted *exactly* to the latency bound:

* the initial population: uniform over the feasible architectures (zero logits);
* a mutation of ``a``: the containers of a random non-empty set ``S`` are redrawn, uniformly over the
  feasible architectures that agree with ``a`` outside ``S`` (logits ``-inf`` off ``a[c]`` for
  ``c`` not in ``S``); ``a`` itself is one, so the set is never empty;
* a crossover of ``a`` and ``b``: uniform over the feasible architectures whose every entry comes
  from ``a`` or ``b`` (logits ``-inf`` off ``{a[c], b[c]}``); ``a`` and ``b`` are two.

So no proposal is ever rejected or retried for latency, and no loop depends on luck: a child that
repeats an architecture already scored is redrawn at most ``novelty_tries`` times (from new keys),
then kept (its score is reused, not recomputed).  Everything random comes from the key; the same key
and a deterministic ``evaluate`` give the same search.  See ``docs/design.md``, "Evolution".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from enot.functional import _bn, _random, _selection
from enot.functional._latency import LatencyTable, check_latency_bound, latency_table
from enot.functional._types import InputsFn, default_sample_to_model_inputs
from enot.functional._validate import check_callable, check_int, check_number

__all__ = [
    "EvolutionConfig",
    "EvolutionResult",
    "EvolutionState",
    "bn_tuned_evaluation",
    "evolution_best",
    "evolution_init",
    "evolution_search",
    "evolution_step",
]

Evaluate = Callable[[list[int]], float]
"""``evaluate(architecture) -> float``: the score of one architecture, higher is better."""


class EvolutionConfig(NamedTuple):
    """Hyper-parameters of the evolution (static: not part of the state).

    Attributes:
        population_size: Architectures per generation (``>= 2``).
        parents_ratio: Share of the population kept as parents each generation (at least one parent).
        mutation_ratio: Share of the population made by mutation each generation; the rest of the
            children are crossovers (all mutations when there is a single parent).
        mutation_probability: Chance that a container is redrawn in a mutation (at least one is).
        novelty_tries: Draws per child before a repeat of an already scored architecture is kept.
    """

    population_size: int = 20
    parents_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutation_probability: float = 0.2
    novelty_tries: int = 10


class EvolutionState(NamedTuple):
    """Everything the evolution carries from one generation to the next.

    Attributes:
        key: Random key of the next generation.
        step: Generations done (0-d ``int64``).
        population: ``(population_size, n_containers)`` ``int64``: one architecture per row.
        scores: ``(population_size,)`` ``float64``: the score of each row.
        evaluated: ``(n_evaluated, n_containers)`` ``int64``: every distinct architecture scored, in
            the order it was scored (``evaluate`` ran once for each).
        evaluated_scores: ``(n_evaluated,)`` ``float64``.
    """

    key: torch.Tensor
    step: torch.Tensor
    population: torch.Tensor
    scores: torch.Tensor
    evaluated: torch.Tensor
    evaluated_scores: torch.Tensor


class EvolutionResult(NamedTuple):
    """What :func:`evolution_search` returns.

    Attributes:
        architecture: The best architecture scored (the earliest scored among equal scores).
        score: Its score.
        state: The final :class:`EvolutionState`.
        best_scores: The best score so far after the initial population and after each generation
            (``search_steps + 1`` floats).
    """

    architecture: list[int]
    score: float
    state: EvolutionState
    best_scores: list[float]


def _float64_table(table: LatencyTable | None) -> LatencyTable | None:
    """The table widened to float64 (exactly), so every latency here is the float64 sum."""
    if table is None:
        return None
    if not isinstance(table, LatencyTable):
        raise TypeError(f"table must be an enot.functional.LatencyTable or None, got {type(table).__name__}")
    return latency_table(table.constant, [o.detach().to("cpu", torch.float64) for o in table.operations])


def _as_int(value: Any) -> Any:
    """``value`` as a Python int when it is an integer of any kind (numpy, 0-d tensor), else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    return int(value) if isinstance(value, numbers.Integral) else value


def _check_problem(
    n_choices: Sequence[int] | None, table: LatencyTable | None, max_latency: float | None
) -> tuple[tuple[int, ...], LatencyTable | None, float | None]:
    table = _float64_table(table)
    if max_latency is not None and check_latency_bound(max_latency) == math.inf:
        max_latency = None  # inf: no bound, everywhere in enot.functional
    if max_latency is not None and table is None:
        raise ValueError("max_latency needs the latency table (table=...) it bounds")
    if n_choices is None:
        if table is None:
            raise ValueError("give n_choices or a latency table")
        n_choices = tuple(o.numel() for o in table.operations)
    n_choices = tuple(check_int(n if isinstance(n, bool) else _as_int(n), "n_choices entries", minimum=1) for n in n_choices)
    if not n_choices:
        raise ValueError("n_choices must name at least one container")
    if table is not None and tuple(o.numel() for o in table.operations) != n_choices:
        raise ValueError(
            f"the latency table has candidate counts {tuple(o.numel() for o in table.operations)}; "
            f"n_choices is {n_choices}"
        )
    if max_latency is not None:
        max_latency = check_latency_bound(max_latency, table)
    return n_choices, table, max_latency


def check_evolution_config(config: EvolutionConfig) -> EvolutionConfig:
    """``config`` if its fields are in range (``TypeError``/``ValueError`` naming the bad field)."""
    if not isinstance(config, EvolutionConfig):
        raise TypeError(f"config must be an enot.functional.EvolutionConfig, got {type(config).__name__}")
    check_int(config.population_size, "population_size", minimum=2)
    for name in ("parents_ratio", "mutation_ratio", "mutation_probability"):
        value = check_number(getattr(config, name), name)
        if value > 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    check_int(config.novelty_tries, "novelty_tries", minimum=1)
    return config


_check_config = check_evolution_config


def _score(evaluate: Evaluate, architecture: list[int]) -> float:
    value = evaluate(list(architecture))
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"evaluate returned a tensor of shape {tuple(value.shape)} for {architecture}; return one number")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"evaluate must return a number (higher is better), got {value!r} for {architecture}")
    value = float(value)
    if math.isnan(value):
        raise FloatingPointError(f"evaluate returned NaN for architecture {architecture}")
    return value


def _draw(key: torch.Tensor, logits: list[torch.Tensor], table: LatencyTable | None, bound: float | None) -> list[int]:
    """One architecture from ``softmax(logits)``, restricted exactly to ``latency <= bound`` when given."""
    return _selection.sample_feasible_architecture(key, logits, table, bound)


def _restricted_logits(n_choices: Sequence[int], allowed: Sequence[Iterable[int] | None]) -> list[torch.Tensor]:
    """Zero logits on the allowed candidates of each container (``None``: all), ``-inf`` elsewhere."""
    out = []
    for n, keep in zip(n_choices, allowed):
        if keep is None:
            out.append(torch.zeros(n, dtype=torch.float64))
        else:
            row = torch.full((n,), -math.inf, dtype=torch.float64)
            row[sorted(set(keep))] = 0.0
            out.append(row)
    return out


def _mutation(key: torch.Tensor, parent: list[int], n_choices: Sequence[int], probability: float,
              table: LatencyTable | None, bound: float | None) -> list[int]:
    g = _random.generator(_random.fold_in(key, 0))
    redraw = (torch.rand(len(n_choices), generator=g, dtype=torch.float64) < probability).tolist()
    if not any(redraw):
        redraw[int(torch.randint(len(n_choices), (), generator=g))] = True
    allowed = [None if r else (k,) for r, k in zip(redraw, parent)]
    return _draw(_random.fold_in(key, 1), _restricted_logits(n_choices, allowed), table, bound)


def _crossover(key: torch.Tensor, first: list[int], second: list[int], n_choices: Sequence[int],
               table: LatencyTable | None, bound: float | None) -> list[int]:
    allowed = [(a, b) for a, b in zip(first, second)]
    return _draw(key, _restricted_logits(n_choices, allowed), table, bound)


class _Scored:
    """The architectures scored so far (``evaluate`` runs once per distinct architecture)."""

    def __init__(self, evaluate: Evaluate, architectures: list[list[int]], scores: list[float]) -> None:
        self.evaluate = evaluate
        self.architectures = architectures
        self.scores = scores
        self.index = {tuple(a): i for i, a in enumerate(architectures)}

    def __contains__(self, architecture: list[int]) -> bool:
        return tuple(architecture) in self.index

    def score(self, architecture: list[int]) -> float:
        key = tuple(architecture)
        if key not in self.index:
            self.index[key] = len(self.architectures)
            self.architectures.append(list(architecture))
            self.scores.append(_score(self.evaluate, list(architecture)))
        return self.scores[self.index[key]]

    @classmethod
    def of(cls, evaluate: Evaluate, state: EvolutionState) -> _Scored:
        return cls(evaluate, state.evaluated.tolist(), state.evaluated_scores.tolist())


def _novel(make: Callable[[torch.Tensor], list[int]], key: torch.Tensor, tries: int,
           seen: Callable[[list[int]], bool]) -> list[int]:
    """``make(fold_in(key, t))`` for the first ``t < tries`` that gives an unseen architecture, else the last."""
    for t in range(tries):
        architecture = make(_random.fold_in(key, t))
        if not seen(architecture):
            break
    return architecture


def _state(key: torch.Tensor, step: int, population: list[list[int]], scores: list[float], scored: _Scored) -> EvolutionState:
    n = len(population[0])
    return EvolutionState(
        key=key,
        step=torch.tensor(step, dtype=torch.int64),
        population=torch.tensor(population, dtype=torch.int64).reshape(-1, n),
        scores=torch.tensor(scores, dtype=torch.float64),
        evaluated=torch.tensor(scored.architectures, dtype=torch.int64).reshape(-1, n),
        evaluated_scores=torch.tensor(scored.scores, dtype=torch.float64),
    )


def evolution_init(
    key: torch.Tensor,
    evaluate: Evaluate,
    n_choices: Sequence[int] | None = None,
    *,
    table: LatencyTable | None = None,
    max_latency: float | None = None,
    config: EvolutionConfig = EvolutionConfig(),
) -> EvolutionState:
    """The initial population: ``population_size`` architectures drawn uniformly from the feasible ones, scored.

    Args:
        key: Random key (not consumed; the state holds the next one).
        evaluate: ``evaluate(architecture) -> float``, higher is better; called once per distinct
            architecture, in a deterministic order.
        n_choices: Candidate count of every container (read from ``table`` when omitted).
        table: Latency table (needed with ``max_latency``).
        max_latency: Hard bound: every architecture drawn, scored or returned has
            ``architecture_latency(a, table) <= max_latency`` (float64 sum); ``None``: no bound.
        config: Hyper-parameters (:class:`EvolutionConfig`).

    Raises:
        ValueError: On a bound below the minimum latency (stating it), inconsistent shapes or bad
            hyper-parameters.
        TypeError: If ``evaluate`` is not callable or returns something other than a number.
        FloatingPointError: If ``evaluate`` returns NaN.
    """
    check_callable(evaluate, "evaluate")
    config = check_evolution_config(config)
    n_choices, table, bound = _check_problem(n_choices, table, max_latency)
    key_init, key_next = _random.split(key)
    scored = _Scored(evaluate, [], [])
    population: list[list[int]] = []
    uniform = _restricted_logits(n_choices, [None] * len(n_choices))
    for i in range(config.population_size):
        child = _novel(
            lambda k: _draw(k, uniform, table, bound), _random.fold_in(key_init, i), config.novelty_tries,
            lambda a: a in scored or a in population,
        )
        population.append(child)
    scores = [scored.score(a) for a in population]
    return _state(key_next, 0, population, scores, scored)


def _parents(state: EvolutionState, count: int) -> list[int]:
    """Rows of the ``count`` best of the population (the earlier row among equal scores)."""
    scores = state.scores.tolist()
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:count]


def evolution_step(
    evaluate: Evaluate,
    state: EvolutionState,
    n_choices: Sequence[int] | None = None,
    *,
    table: LatencyTable | None = None,
    max_latency: float | None = None,
    config: EvolutionConfig = EvolutionConfig(),
) -> EvolutionState:
    """One generation: keep the best parents, add mutations and crossovers of them, score the new ones.

    The new population is the ``max(1, round(parents_ratio * P))`` best of ``state.population``
    followed by ``round(mutation_ratio * P)`` mutations (capped so that the parents fit) and
    crossovers for the rest; each child's parents are drawn uniformly from the kept ones.  Only
    architectures never scored before are passed to ``evaluate``.  ``state`` is not changed.

    Args and Raises: as :func:`evolution_init`; ``n_choices``, ``table``, ``max_latency`` and
    ``config`` must be the ones the state was made with.
    """
    check_callable(evaluate, "evaluate")
    config = check_evolution_config(config)
    n_choices, table, bound = _check_problem(n_choices, table, max_latency)
    if not isinstance(state, EvolutionState):
        raise TypeError(f"state must be an enot.functional.EvolutionState, got {type(state).__name__}")
    size = config.population_size
    if state.population.shape != (size, len(n_choices)):
        raise ValueError(
            f"state.population has shape {tuple(state.population.shape)}; population_size={size} and "
            f"{len(n_choices)} containers give {(size, len(n_choices))}"
        )
    key_now, key_next = _random.split(state.key)
    n_parents = min(size - 1, max(1, round(config.parents_ratio * size)))
    n_mutations = min(size - n_parents, round(config.mutation_ratio * size))
    if n_parents == 1:
        n_mutations = size - n_parents  # a crossover needs two parents
    parents = [state.population[i].tolist() for i in _parents(state, n_parents)]
    scored = _Scored.of(evaluate, state)
    children: list[list[int]] = []

    def seen(architecture: list[int]) -> bool:
        return architecture in scored or architecture in children

    for j in range(size - n_parents):
        if j < n_mutations:
            def make(k: torch.Tensor) -> list[int]:
                g = _random.generator(_random.fold_in(k, 2))
                parent = parents[int(torch.randint(n_parents, (), generator=g))]
                return _mutation(k, parent, n_choices, config.mutation_probability, table, bound)
        else:
            def make(k: torch.Tensor) -> list[int]:
                g = _random.generator(_random.fold_in(k, 2))
                first, second = torch.randperm(n_parents, generator=g)[:2].tolist()
                return _crossover(k, parents[first], parents[second], n_choices, table, bound)
        children.append(_novel(make, _random.fold_in(key_now, j), config.novelty_tries, seen))
    population = parents + children
    scores = [scored.score(a) for a in population]
    return _state(key_next, int(state.step) + 1, population, scores, scored)


def evolution_best(state: EvolutionState) -> tuple[list[int], float]:
    """The best architecture scored so far and its score (the earliest scored among equal scores)."""
    best = int(torch.argmax(state.evaluated_scores))  # first maximum
    return state.evaluated[best].tolist(), float(state.evaluated_scores[best])


def evolution_search(
    key: torch.Tensor,
    evaluate: Evaluate,
    search_steps: int,
    n_choices: Sequence[int] | None = None,
    *,
    table: LatencyTable | None = None,
    max_latency: float | None = None,
    config: EvolutionConfig = EvolutionConfig(),
) -> EvolutionResult:
    """:func:`evolution_init` then ``search_steps`` times :func:`evolution_step`; the best architecture scored.

    ``evaluate`` runs at most ``population_size + search_steps * (population_size - parents)``
    times (once per distinct architecture).

    Raises:
        ValueError: If ``search_steps`` is negative, and as :func:`evolution_init`.
    """
    check_int(search_steps, "search_steps")
    state = evolution_init(key, evaluate, n_choices, table=table, max_latency=max_latency, config=config)
    best_scores = [evolution_best(state)[1]]
    for _ in range(search_steps):
        state = evolution_step(evaluate, state, n_choices, table=table, max_latency=max_latency, config=config)
        best_scores.append(evolution_best(state)[1])
    architecture, score = evolution_best(state)
    return EvolutionResult(architecture, score, state, best_scores)


def bn_tuned_evaluation(
    search_space: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    batches: Iterable[Any],
    metric: Callable[[list[int], dict[str, torch.Tensor]], float],
    *,
    sample_to_model_inputs: InputsFn = default_sample_to_model_inputs,
) -> Evaluate:
    """An ``evaluate`` for the evolution that scores each architecture with its batch norm recalibrated.

    ``batches`` is read once into a list: every architecture's batch-norm statistics are recomputed
    (:func:`enot.functional.bn_tune`, reset and cumulative) on the *same* batches, from ``buffers``,
    so scores differ by the architecture only.  Empty ``batches``: no tuning.

    Args:
        search_space: The search space (``metric`` usually runs ``make_apply(search_space)``).
        params: Weights; only read.
        buffers: Buffers every tuning starts from; never mutated.
        batches: Dataloader items to tune on (e.g. the first ``bn_tune_batches`` of the train loader).
        metric: ``metric(architecture, tuned_buffers) -> float``, higher is better.
        sample_to_model_inputs: Maps one item to ``(args, kwargs)``.

    Returns:
        ``evaluate(architecture) -> metric(architecture, bn_tune(..., architecture=architecture))``.
    """
    check_callable(metric, "metric")
    batches = list(batches)

    def evaluate(architecture: list[int]) -> float:
        tuned = dict(buffers)
        if batches:
            tuned = _bn.bn_tune(
                search_space, params, buffers, batches, architecture=architecture,
                sample_to_model_inputs=sample_to_model_inputs,
            )
        return metric(list(architecture), tuned)

    return evaluate
