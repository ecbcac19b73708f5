"""Latency-bounded architecture selection and sampling: exact, over a :class:`LatencyTable`.

An architecture ``a`` is feasible under ``bound`` when ``architecture_latency(a, table) <= bound``,
the latency summed left to right from the constant, in float64; every function here tests
feasibility with that same sum, so "feasible" means the same number everywhere.

* :func:`select_architecture` solves the multiple-choice knapsack
  ``max_a sum_c score[c][a[c]]  s.t.  latency(a) <= bound`` exactly by dynamic programming over
  Pareto fronts of (latency, score) partial solutions, pruned by the bound and by the LP-relaxation upper bound
  on the score still reachable.
* :func:`top_k_architectures` lists the ``k`` best feasible architectures in order (Lawler's
  partition of the solution space, each part solved exactly by :func:`select_architecture`).
* :func:`sample_feasible_architecture` draws from ``softmax(logits)`` restricted to the feasible
  set, exactly, by rejection from an exact proposal that is a superset of the feasible set.
* :func:`feasible_alternatives` gives, for a feasible architecture, which single-container swaps
  stay feasible (the support of each container's conditional under the restricted distribution).
"""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from enot.functional import _random, _sampling
from enot.functional._latency import (
    LatencyTable,
    check_latency_bound,
    float64_operations,
    latency_sum,
)
from enot.functional._validate import check_int

__all__ = [
    "architecture_log_probability",
    "feasible_alternatives",
    "sample_feasible_architecture",
    "select_architecture",
    "top_k_architectures",
]

# Proposal grid of sample_feasible_architecture: start, largest, draws per grid before refining.
_START_BINS, _MAX_BINS, _TRIES_PER_GRID = 1 << 10, 1 << 16, 8


def _latencies(table: LatencyTable) -> tuple[float, list[np.ndarray]]:
    if not isinstance(table, LatencyTable):
        raise TypeError(f"expected an enot.functional.LatencyTable, got {type(table).__name__}")
    return float(table.constant), float64_operations(table)


def _scores(scores: Sequence[torch.Tensor | Sequence[float]], n_choices: Sequence[int]) -> list[np.ndarray]:
    out = [np.asarray(torch.as_tensor(s).detach().to("cpu", torch.float64).reshape(-1)) for s in scores]
    if len(out) != len(n_choices):
        raise ValueError(f"got scores for {len(out)} containers; the latency table has {len(n_choices)}")
    for c, (s, n) in enumerate(zip(out, n_choices)):
        if s.shape != (n,):
            raise ValueError(f"scores of container {c} have {s.size} entries; its latencies have {n}")
        if np.isnan(s).any() or np.isposinf(s).any():
            raise ValueError(f"scores of container {c} hold NaN or +inf: {s.tolist()}")
    return out


def _log_probabilities(logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.log_softmax(l.detach().to("cpu", torch.float64), 0) for l in logits]


def _sequential_latency(constant: float, ops: list[np.ndarray], architecture: Sequence[int]) -> float:
    return latency_sum(constant, (o[k] for o, k in zip(ops, architecture)))


def _check_bound(table: LatencyTable, bound: Any) -> tuple[float, float, list[np.ndarray]]:
    """``(bound, constant, ops)``: the bound read by :func:`check_latency_bound` (refused below the
    minimum latency; ``inf`` is no bound) and the table in float64."""
    constant, ops = _latencies(table)
    return check_latency_bound(bound, table), constant, ops


def _no_finite_feasible(bound: float, what: str) -> ValueError:
    return ValueError(
        f"no architecture within the latency bound {bound!r} has a finite {what}: every feasible "
        "architecture uses a candidate whose logit is -inf (raise the bound or make those logits finite)"
    )


def architecture_log_probability(architecture: Sequence[int], logits: Sequence[torch.Tensor]) -> float:
    """``sum_c log softmax(logits[c])[architecture[c]]`` in float64."""
    return float(sum(lp[k] for lp, k in zip(_log_probabilities(logits), architecture)))


def select_architecture(
    logits: Sequence[torch.Tensor],
    table: LatencyTable,
    max_latency: float,
    *,
    scores: Sequence[torch.Tensor] | None = None,
) -> list[int]:
    """The most probable architecture whose latency is at most ``max_latency`` (exact).

    Maximises ``sum_c log softmax(logits[c])[a[c]]`` (or ``sum_c scores[c][a[c]]`` when ``scores``
    is given) subject to ``architecture_latency(a, table) <= max_latency``: a multiple-choice
    knapsack, solved exactly by dynamic programming over the Pareto front of (latency, score)
    partial solutions, container by container.  A partial solution is dropped only when another
    one is at least as fast and at least as good (it can never do better), when even the fastest
    completion breaks the bound, or when the LP relaxation of its best completion cannot reach a
    lower bound; so the optimum is never dropped.  The lower bound is first guessed close to the LP
    bound of the whole problem (small fronts); a guess is accepted only when the programme finds an
    architecture scoring at least the guess, otherwise it falls back towards a known feasible score.  Among architectures of
    equal score the faster one is returned; remaining ties are broken deterministically.

    Args:
        logits: One 1-D tensor per container.
        table: Latency table with the same candidate counts.
        max_latency: The bound.
        scores: Optional per-candidate scores to maximise instead of the log-probabilities.

    Returns:
        The architecture as ``list[int]``.

    Raises:
        ValueError: If the bound is below the minimum latency (the message states the minimum), if
            every architecture within the bound has a score of ``-inf`` (says so), or the shapes of
            logits, scores and table disagree.
        TypeError: If ``max_latency`` is not a number.
    """
    bound, constant, ops = _check_bound(table, max_latency)
    n_choices = [o.size for o in ops]
    values = _scores(scores if scores is not None else _log_probabilities(logits), n_choices)
    n = len(ops)
    # Fastest completion of containers c..n-1, and the LP-relaxation upper bound on the best
    # completion's score within a budget (a concave piecewise-linear function of the budget).
    min_rest = np.zeros(n + 1)
    for c in range(n - 1, -1, -1):
        min_rest[c] = min_rest[c + 1] + ops[c].min()
    hulls = [_hull(o, v) for o, v in zip(ops, values)]
    suffix = [_suffix_bound(hulls[c:]) for c in range(n + 1)]
    # A feasible architecture (LP rounding) gives a lower bound on the optimum, the LP relaxation an
    # upper one.  Guess a lower bound close to the upper one first (few partial solutions survive):
    # when the programme finds an architecture at least as good as the guess, the optimum was never
    # pruned; otherwise lower the guess, ending with the known feasible score.
    lower = max(
        _lp_rounding_lower_bound(constant, ops, values, hulls, bound),
        _fastest_lower_bound(constant, ops, values, bound),
    )
    if np.isfinite(lower):
        xs, ys = suffix[0]
        top = float(np.interp(bound - constant + 1e-9 * max(1.0, abs(bound)), xs, ys))
        shares: tuple[float, ...] = (0.3, 0.6, 1.0) if np.isfinite(top) and top > lower else (1.0,)
    else:  # no feasible finite score known: an exact programme without the LP lower bound
        top, shares = lower, (1.0,)
    for share in shares:
        guess = top - (top - lower) * share if share < 1.0 else lower
        lat, score, parents, choices = _pareto_dp(constant, ops, values, bound, min_rest, suffix, guess)
        found = score[lat <= bound]
        if share == 1.0 or (found.size and found.max() >= guess):
            break
    feasible = np.nonzero(lat <= bound)[0]
    if feasible.size == 0:  # the fastest architecture is feasible: only -inf scores can empty the front
        raise _no_finite_feasible(bound, "score" if scores is not None else "log-probability")
    best = feasible[np.argmax(score[feasible])]
    architecture = [0] * n
    point = int(best)
    for c in range(n - 1, -1, -1):
        architecture[c] = int(choices[c][point])
        point = int(parents[c][point])
    return architecture


def top_k_architectures(
    logits: Sequence[torch.Tensor],
    table: LatencyTable,
    max_latency: float,
    k: int,
    *,
    scores: Sequence[torch.Tensor] | None = None,
) -> list[list[int]]:
    """The ``k`` most probable architectures whose latency is at most ``max_latency``, best first (exact).

    The score of ``a`` is ``sum_c log softmax(logits[c])[a[c]]`` (or ``sum_c scores[c][a[c]]``), as in
    :func:`select_architecture`, whose answer is always the first entry.  Lawler's K-best scheme:
    after the best architecture ``x`` of a part of the solution space (a set of allowed candidates
    per container) is taken, the rest of that part is split into disjoint parts, part ``i`` keeping
    ``x``'s candidates in containers ``0..i-1`` and excluding ``x[i]`` in container ``i``; each part's
    best is found by the exact knapsack (excluded candidates get score ``-inf``), and the best of all
    open parts comes next.  So every feasible architecture of finite score lies in exactly one part and
    the list is exactly the ``k`` best, fewer when fewer feasible architectures have a finite score.
    Ties in score: the faster architecture first, then the order in which parts were opened
    (deterministic).  Cost: ``k * n_containers`` knapsacks at most.

    Args:
        logits: One 1-D tensor per container.
        table: Latency table with the same candidate counts.
        max_latency: The bound.
        k: How many architectures (at least 1).
        scores: Optional per-candidate scores to maximise instead of the log-probabilities.

    Returns:
        Up to ``k`` distinct architectures, best first.

    Raises:
        ValueError: As :func:`select_architecture` (bound below the minimum latency, no feasible
            architecture of finite score, shapes), or ``k < 1``.
        TypeError: If ``max_latency`` is not a number or ``k`` not an integer.
    """
    check_int(k, "k", minimum=1)
    bound, constant, ops = _check_bound(table, max_latency)
    values = _scores(scores if scores is not None else _log_probabilities(logits), [o.size for o in ops])

    def best(allowed: list[np.ndarray]) -> tuple[float, float, list[int]] | None:
        masked = [np.where(a, v, -np.inf) for a, v in zip(allowed, values)]
        if any(not np.isfinite(m).any() for m in masked):
            return None
        fastest = [int(np.nonzero(np.isfinite(m))[0][np.argmin(o[np.isfinite(m)])]) for o, m in zip(ops, masked)]
        if _sequential_latency(constant, ops, fastest) > bound:
            return None  # no feasible architecture of finite score in this part
        arch = select_architecture(None, table, bound, scores=[torch.from_numpy(m) for m in masked])
        return float(sum(v[j] for v, j in zip(values, arch))), _sequential_latency(constant, ops, arch), arch

    first = best([np.ones(o.size, dtype=bool) for o in ops])
    if first is None:
        raise _no_finite_feasible(bound, "score" if scores is not None else "log-probability")
    opened = 0
    heap = [(-first[0], first[1], opened, first[2], [np.ones(o.size, dtype=bool) for o in ops])]
    found: list[list[int]] = []
    while heap and len(found) < k:
        _, _, _, arch, allowed = heapq.heappop(heap)
        found.append(arch)
        for i in range(len(ops)):
            part = [a.copy() for a in allowed]
            for j in range(i):  # containers before i keep arch's candidate
                part[j] = np.zeros_like(part[j])
                part[j][arch[j]] = True
            part[i][arch[i]] = False
            solution = best(part)
            if solution is not None:
                opened += 1
                heapq.heappush(heap, (-solution[0], solution[1], opened, solution[2], part))
    return found


def _pareto_dp(
    constant: float,
    ops: list[np.ndarray],
    values: list[np.ndarray],
    bound: float,
    min_rest: np.ndarray,
    suffix: list[tuple[np.ndarray, np.ndarray]],
    lower: float,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The dynamic programme over Pareto fronts of (latency, score) partial solutions.

    Keeps, container by container, the partial solutions that no other one dominates, whose fastest
    completion fits the bound and whose LP upper bound reaches ``lower``.  Returns the
    final front's latencies and scores, and per container the parent index and choice of each point.
    """
    slack = 1e-9 * max(1.0, abs(bound))  # partial sums and suffix minima are rounded differently
    lat = np.array([constant])
    score = np.array([0.0])
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    for c in range(len(ops)):
        k = ops[c].size
        cand_lat = (lat[:, None] + ops[c][None, :]).reshape(-1)
        cand_score = (score[:, None] + values[c][None, :]).reshape(-1)
        keep = (cand_lat + min_rest[c + 1] <= bound + slack) & np.isfinite(cand_score)
        idx = np.nonzero(keep)[0]
        cand_lat, cand_score = cand_lat[idx], cand_score[idx]
        budget = np.maximum(bound - cand_lat, 0.0) + slack  # float sums may pass the bound by rounding
        xs, ys = suffix[c + 1]
        upper = cand_score + np.interp(budget, xs, ys)
        upper[budget < xs[0]] = -np.inf  # no completion with a finite score fits
        # Rounding slack proportional to the magnitudes summed.
        upper += 1e-9 * (np.abs(cand_score) + np.abs(ys).max() + 1.0)
        hopeful = upper >= lower - 1e-9 * max(1.0, abs(lower))
        idx, cand_lat, cand_score = idx[hopeful], cand_lat[hopeful], cand_score[hopeful]
        order = np.lexsort((-cand_score, cand_lat))  # latency up, score down, then index (stable)
        cand_lat, cand_score, idx = cand_lat[order], cand_score[order], idx[order]
        best_before = np.maximum.accumulate(np.concatenate(([-np.inf], cand_score[:-1])))
        pareto = cand_score > best_before
        idx, lat, score = idx[pareto], cand_lat[pareto], cand_score[pareto]
        parents.append(idx // k)
        choices.append(idx % k)
    return lat, score, parents, choices


class _Hull(NamedTuple):
    """Upper concave hull of one container's (latency, score) points (see :func:`_hull`)."""

    latency: float  # the start point: the fastest candidate with a finite score
    score: float
    dl: np.ndarray  # latency steps of the hull's increasing segments
    dv: np.ndarray  # score steps (slopes dv / dl decreasing and positive)
    items: np.ndarray  # candidate index of every hull point


def _hull(ops: np.ndarray, values: np.ndarray) -> _Hull:
    """Upper concave hull of one container's finite (latency, score) points, from its fastest point:
    the LP relaxation of the multiple-choice knapsack."""
    points: list[tuple[float, float, int]] = []
    order = sorted((l, -v, k) for k, (l, v) in enumerate(zip(ops.tolist(), values.tolist())) if v > -math.inf)
    for l, v, k in ((l, -nv, k) for l, nv, k in order):
        if points and v <= points[-1][1]:
            continue  # dominated: not faster and not better
        while len(points) >= 2:
            (l1, v1, _), (l2, v2, _) = points[-2], points[-1]
            if (v2 - v1) * (l - l1) <= (v - v1) * (l2 - l1):  # points[-1] lies on or under the chord
                points.pop()
            else:
                break
        points.append((l, v, k))
    if not points:
        return _Hull(math.inf, -math.inf, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    lat = np.array([p[0] for p in points])
    val = np.array([p[1] for p in points])
    return _Hull(points[0][0], points[0][1], np.diff(lat), np.diff(val), np.array([p[2] for p in points]))


def _suffix_bound(hulls: list[_Hull]) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints ``(xs, ys)`` of the LP bound: the best score of the containers in ``hulls`` within
    latency ``x`` is at most ``interp(x, xs, ys)`` (and none fits below ``xs[0]``)."""
    base_lat = sum(h.latency for h in hulls)
    base_val = sum(h.score for h in hulls)
    if not np.isfinite(base_val):
        return np.array([np.inf]), np.array([-np.inf])
    dl = np.concatenate([h.dl for h in hulls] + [np.zeros(0)])
    dv = np.concatenate([h.dv for h in hulls] + [np.zeros(0)])
    order = np.argsort(-(dv / dl), kind="stable")
    xs = base_lat + np.concatenate(([0.0], np.cumsum(dl[order])))
    ys = base_val + np.concatenate(([0.0], np.cumsum(dv[order])))
    return xs, ys


def _fastest_lower_bound(constant: float, ops: list[np.ndarray], values: list[np.ndarray], bound: float) -> float:
    """Score of the fastest architecture (best score among equally fast candidates): always feasible
    once the bound passed :func:`_check_bound`; ``-inf`` when its score is."""
    architecture = []
    for o, v in zip(ops, values):
        fastest = np.nonzero(o == o.min())[0]
        architecture.append(int(fastest[np.argmax(v[fastest])]))
    if _sequential_latency(constant, ops, architecture) > bound:
        return -np.inf
    return float(sum(v[k] for v, k in zip(values, architecture)))


def _lp_rounding_lower_bound(
    constant: float, ops: list[np.ndarray], values: list[np.ndarray], hulls: list[_Hull], bound: float
) -> float:
    """Score of a feasible architecture (``-inf`` if none is found): the LP relaxation's greedy,
    stopping per container at the first hull segment that does not fit."""
    if not all(np.isfinite(h.score) for h in hulls):
        return -np.inf
    architecture = [int(h.items[0]) for h in hulls]
    position = [0] * len(hulls)
    total = _sequential_latency(constant, ops, architecture)
    with np.errstate(over="ignore"):  # a subnormal latency step: an infinite slope, taken first
        segments = sorted(
            ((-float(dv / dl), c, s) for c, h in enumerate(hulls) for s, (dl, dv) in enumerate(zip(h.dl, h.dv))),
        )
    blocked = [False] * len(hulls)
    for _, c, s in segments:
        if blocked[c] or s != position[c]:
            continue
        dl = hulls[c].dl[s]
        if total + dl > bound:
            blocked[c] = True
            continue
        total += dl
        position[c] = s + 1
        architecture[c] = int(hulls[c].items[s + 1])
    if _sequential_latency(constant, ops, architecture) > bound:
        return -np.inf
    return float(sum(v[k] for v, k in zip(values, architecture)))


def feasible_alternatives(architecture: Sequence[int], table: LatencyTable, max_latency: float | None) -> list[torch.Tensor]:
    """Which single-container swaps of ``architecture`` stay within ``max_latency``.

    Returns:
        One boolean tensor per container: entry ``k`` of container ``c`` tells whether
        ``architecture`` with ``a[c] = k`` has latency ``<= max_latency`` (all ``True`` when
        ``max_latency`` is ``None``).  Latencies are summed in the same order as
        :func:`enot.functional.architecture_latency`.
    """
    constant, ops = _latencies(table)
    if max_latency is None:
        return [torch.ones(o.size, dtype=torch.bool) for o in ops]
    max_latency = check_latency_bound(max_latency)
    chosen = np.array([o[k] for o, k in zip(ops, architecture)])
    prefix = np.empty(len(ops))
    running = np.float64(constant)
    for c, value in enumerate(chosen):
        prefix[c] = running
        running = running + value
    rows = [prefix[c] + ops[c] for c in range(len(ops))]  # partial sums up to and including c
    for c in range(len(ops)):
        total = rows[c]
        for value in chosen[c + 1 :]:
            total = total + value
        rows[c] = total
    return [torch.from_numpy(row <= float(max_latency)) for row in rows]


def _proposal_tables(
    logp: list[np.ndarray], units: list[np.ndarray], budget: int
) -> list[np.ndarray]:
    """``mass[c][r]``: the log of a quantity proportional to the probability that containers ``c..``
    use at most ``r`` units (log space: probabilities of ``exp(-800)`` do not underflow to 0)."""
    mass = [np.zeros(0)] * (len(logp) + 1)
    mass[-1] = np.zeros(budget + 1)
    for c in range(len(logp) - 1, -1, -1):
        terms = np.full((len(logp[c]), budget + 1), -np.inf)
        for k, (lp, u) in enumerate(zip(logp[c], units[c])):
            if lp > -np.inf and u <= budget:
                terms[k, u:] = lp + mass[c + 1][: budget + 1 - u]
        mass[c] = _log_sum(terms)
    return mass


def _log_sum(terms: np.ndarray) -> np.ndarray:
    """``log(sum(exp(terms), axis=0))`` shifted so that its largest entry is 0 (``-inf`` stays ``-inf``)."""
    top = terms.max(axis=0)
    safe = np.where(top > -np.inf, top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.exp(terms - safe).sum(axis=0)) + safe
    best = total.max()
    return total - best if best > -np.inf else total


def sample_feasible_architecture(
    key: torch.Tensor,
    logits: Sequence[torch.Tensor],
    table: LatencyTable | None,
    max_latency: float | None,
    *,
    bins: int = _START_BINS,
) -> list[int]:
    """An architecture drawn from ``softmax(logits)`` restricted to ``latency <= max_latency``, exactly.

    The one way ``enot`` draws a feasible architecture (the search step, the ``"feasible"`` sampler
    and evolution call it).  ``max_latency`` ``None`` or ``inf``: no bound, the draw is
    :func:`enot.functional.categorical_architecture` (``table`` may then be ``None``).

    Each candidate's latency above its container's minimum is rounded *down* to a grid of ``bins``
    steps spanning the slack ``max_latency - min_latency``; the rounded sum of every feasible
    architecture then fits the grid budget (plus one step per container for float rounding), so
    the set ``A`` the grid admits contains the feasible set ``F``.  A dynamic programme over the
    grid draws exactly from ``softmax(logits)`` restricted to ``A``; a draw outside ``F`` is
    rejected and redrawn (the grid is refined after repeated rejections).  Accepted draws follow
    ``p`` restricted to ``F`` exactly, whatever grid produced them, because every proposal is
    ``p`` restricted to a superset of ``F`` (rejection sampling).  When draws keep being rejected
    (``F`` holds a vanishing share of ``A``: bounds on ties of float sums, ``-inf`` logits), the
    draw switches to an exact programme over the distinct partial latency sums, so it never loops
    without end.  Cost: ``O(bins * sum(n_choices))`` per grid.

    Args:
        key: Random key (not consumed).
        logits: One 1-D tensor per container.
        table: Latency table with the same candidate counts (may be ``None`` without a bound).
        max_latency: The bound (``None`` or ``inf``: none).
        bins: Initial grid size (refined up to ``2**16`` when draws are rejected).

    Raises:
        ValueError: If the bound is below the minimum latency (stating the minimum), NaN, given
            without a table, if every architecture within the bound has probability 0 (``-inf``
            logits, not a small probability that underflows: the draw works in log space; says so),
            or shapes disagree.
        TypeError: If the bound is not a real number or a one-element real tensor.
        RuntimeError: If draws keep being rejected and the exact programme would hold more than
            ``2**20`` partial sums (a vanishing feasible share on a huge space).
    """
    check_int(bins, "bins", minimum=1)
    if max_latency is None:
        return _sampling.categorical_architecture(key, logits)
    if table is None:
        raise ValueError("a latency bound needs a latency table (table=...)")
    bound, constant, ops = _check_bound(table, max_latency)
    logp = _feasible_log_probabilities(constant, ops, logits, table, bound)
    if bound == math.inf:  # no bound: the unrestricted draw (as with max_latency=None)
        return _sampling.categorical_architecture(key, logits)
    g = _random.generator(key)
    grid = bins
    for _ in range(_GRID_ROUNDS):
        proposal = _GridProposal(constant, ops, logp, bound, grid)
        for _ in range(_TRIES_PER_GRID):
            architecture = proposal.draw(g)
            if _sequential_latency(constant, ops, architecture) <= bound:
                return architecture
        grid = min(grid * 2, _MAX_BINS)
    return _exact_draw(constant, ops, logp, bound, g)


# Grid rounds before the exact fallback (the grid doubles each round up to _MAX_BINS).
_GRID_ROUNDS = 8
_MAX_PARTIAL_SUMS = 1 << 20


def _feasible_log_probabilities(
    constant: float, ops: list[np.ndarray], logits: Sequence[torch.Tensor], table: LatencyTable, bound: float
) -> list[np.ndarray]:
    """``log_softmax(logits)`` per container, ``-inf`` on the candidates that fit no feasible architecture.

    Everything downstream stays in log space, so a candidate of probability ``exp(-800)`` keeps its
    share instead of underflowing to 0.  Raises ``ValueError`` when every feasible architecture has
    probability 0 (a ``-inf`` log-probability), as :func:`select_architecture` does.
    """
    logp = [lp.numpy().copy() for lp in _log_probabilities(logits)]
    _scores(logp, [o.size for o in ops])
    # Candidates infeasible even with every other container at its fastest never appear in a
    # feasible architecture (rounded addition is monotonic): drop them from the proposal exactly.
    fastest = [int(np.argmin(o)) for o in ops]
    for lp, mask in zip(logp, feasible_alternatives(fastest, table, bound)):
        lp[~mask.numpy()] = -np.inf
    # The fastest architecture among candidates of positive probability decides whether any is feasible.
    alive = [lp > -np.inf for lp in logp]
    if any(not a.any() for a in alive) or _sequential_latency(
        constant, ops, [int(np.nonzero(a)[0][np.argmin(o[a])]) for o, a in zip(ops, alive)]
    ) > bound:
        raise _no_finite_feasible(bound, "log-probability")
    return logp


class _GridProposal:
    """Exact draws from ``p`` restricted to the superset ``A`` of the feasible set a grid admits (log space)."""

    def __init__(self, constant: float, ops: list[np.ndarray], logp: list[np.ndarray], bound: float, grid: int):
        lows = [o.min() for o in ops]
        excess = [o - low for o, low in zip(ops, lows)]
        slack = bound - _sequential_latency(constant, ops, [int(np.argmin(o)) for o in ops])
        span = max(slack, max(float(e.max()) for e in excess), 0.0)
        step = (slack if slack > 0 else span if span > 0 else 1.0) / grid
        # The one spare unit per container covers float rounding only if a unit is at least a few ulps of
        # the sums compared with the bound: an excess that rounded addition absorbs (1.0 + 2e-255 == 1.0)
        # must not count as units.
        magnitude = abs(constant) + sum(float(np.abs(o).max()) for o in ops) + abs(bound)
        step = max(step, 4 * sys.float_info.epsilon * magnitude)
        if not step >= sys.float_info.min:  # a subnormal slack or span: quotients lose their precision
            step = 1.0  # every tiny excess rounds down to 0 units: still a superset of the feasible set
        self.budget = int(math.ceil(max(slack, 0.0) / step)) + len(ops) + 1  # one spare unit per rounding
        with np.errstate(over="ignore"):
            self.units = [np.minimum(np.floor(e / step), self.budget + 1).astype(np.int64) for e in excess]
        self.logp = logp
        self.mass = _proposal_tables(logp, self.units, self.budget)

    def draw(self, g: torch.Generator) -> list[int]:
        architecture, left = [], self.budget
        uniforms = torch.rand(len(self.logp), generator=g, dtype=torch.float64).numpy()
        for c, (lp, units) in enumerate(zip(self.logp, self.units)):
            fits = units <= left
            weights = np.where(fits, lp + self.mass[c + 1][np.clip(left - units, 0, self.budget)], -np.inf)
            k = _categorical(_exp_shifted(weights), uniforms[c])
            architecture.append(k)
            left -= int(units[k])
        return architecture


def _exp_shifted(log_weights: np.ndarray) -> np.ndarray:
    """``exp(log_weights - max)``: weights of the same ratios, the largest 1 (no underflow to all zeros)."""
    top = log_weights.max()
    return np.exp(log_weights - top) if top > -np.inf else np.zeros_like(log_weights)


def _categorical(weights: np.ndarray, uniform: float) -> int:
    cdf = np.cumsum(weights)
    k = int(np.searchsorted(cdf, uniform * cdf[-1], side="right"))
    if cdf[-1] <= 0 or k >= len(weights):  # only reachable through a bug: the checks above ensure mass
        raise AssertionError(f"categorical draw over weights {weights.tolist()} without mass")
    while weights[k] <= 0:  # uniform * total landed on a flat stretch of the cdf's end
        k -= 1
    return k


def _exact_draw(constant: float, ops: list[np.ndarray], logp: list[np.ndarray], bound: float, g: torch.Generator) -> list[int]:
    """An exact draw by a programme over the distinct partial sums ``constant + o_0 + ... + o_c`` (log space)."""
    # Forward: the partial sums reachable by candidates of positive probability whose fastest
    # completion still fits (rounded addition is monotonic, so no feasible architecture is lost).
    alive = [lp > -np.inf for lp in logp]
    fastest = [float(o[a].min()) for o, a in zip(ops, alive)]
    layers: list[np.ndarray] = [np.array([np.float64(constant)])]
    for c, (o, a) in enumerate(zip(ops, alive)):
        sums = np.unique((layers[-1][:, None] + o[a][None, :]).reshape(-1))
        completion = sums.copy()
        for low in fastest[c + 1 :]:
            completion = completion + low
        layers.append(sums[completion <= bound])
        if layers[-1].size > _MAX_PARTIAL_SUMS:
            raise RuntimeError(
                "sample_feasible_architecture: the feasible set holds a vanishing share of the distribution "
                f"and the exact fallback would track more than {_MAX_PARTIAL_SUMS} partial latency sums"
            )
    # Backward: mass[c][i] is the log of a quantity proportional to the probability that containers c..
    # complete the partial sum layers[c][i] feasibly (every layer is non-empty: a feasible architecture of
    # positive probability exists, checked by _feasible_log_probabilities).
    mass = [np.zeros(0)] * len(layers)
    mass[-1] = np.zeros(layers[-1].size)
    for c in range(len(ops) - 1, -1, -1):
        mass[c] = _log_sum((_lookup(layers[c + 1], mass[c + 1], layers[c][:, None] + ops[c][None, :]) + logp[c]).T)
    architecture, partial = [], np.float64(constant)
    uniforms = torch.rand(len(ops), generator=g, dtype=torch.float64).numpy()
    for c, o in enumerate(ops):
        weights = _lookup(layers[c + 1], mass[c + 1], partial + o) + logp[c]
        k = _categorical(_exp_shifted(weights), uniforms[c])
        architecture.append(k)
        partial = partial + o[k]
    return architecture


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values[i]`` where ``queries == keys[i]`` (``keys`` sorted), ``-inf`` (log 0) where a query is not a key."""
    pos = np.clip(np.searchsorted(keys, queries), 0, keys.size - 1)
    return np.where(keys[pos] == queries, values[pos], -np.inf)
