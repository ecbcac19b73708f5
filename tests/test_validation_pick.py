"""The validation pick: exact K best feasible architectures, re-ranked by a score (brute force on small spaces)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as Fn

import enot.functional as ef
from enot.latency import SearchSpaceLatencyContainer
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer


def _case(seed: int, grid: float | None):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 5, (4,), generator=g).tolist()
    logits = [torch.randn(n, generator=g, dtype=torch.float64) for n in counts]
    if grid is None:
        ops = [torch.rand(n, generator=g, dtype=torch.float64) * 5 for n in counts]
    else:  # latencies on a grid: ties of latency and architectures exactly on the bound
        ops = [torch.randint(0, 5, (n,), generator=g).double() * grid for n in counts]
    table = ef.latency_table(0.25, ops)
    lats = sorted(float(ef.architecture_latency(list(a), table)) for a in itertools.product(*(range(n) for n in counts)))
    return logits, table, lats[int(torch.randint(len(lats), (), generator=g))]


def _brute_sorted(logits, table, bound, scores=None):
    values = scores if scores is not None else [torch.log_softmax(l, 0) for l in logits]
    rows = []
    for a in itertools.product(*(range(l.numel()) for l in logits)):
        if float(ef.architecture_latency(list(a), table)) <= bound:
            score = float(sum(float(v[k]) for v, k in zip(values, a)))
            if score > float("-inf"):
                rows.append((score, list(a)))
    return sorted(rows, key=lambda r: -r[0])


@pytest.mark.parametrize("grid", [None, 0.1, 1.0])
@pytest.mark.parametrize("seed", range(12))
def test_top_k_equals_brute_force_sorted(seed, grid):
    logits, table, bound = _case(seed, grid)
    brute = _brute_sorted(logits, table, bound)
    for k in (1, 3, 8, len(brute) + 2):
        got = ef.top_k_architectures(logits, table, bound, k)
        assert len(got) == min(k, len(brute))
        assert len({tuple(a) for a in got}) == len(got)
        assert all(float(ef.architecture_latency(a, table)) <= bound for a in got)
        got_scores = [ef.architecture_log_probability(a, logits) for a in got]
        assert got_scores == pytest.approx([r[0] for r in brute[: len(got)]], abs=1e-12)
        # exactly the k best: nothing left out scores above the last one listed
        left_out = [r[0] for r in brute if r[1] not in got]
        assert not left_out or max(left_out) <= got_scores[-1] + 1e-12
        assert got[0] == ef.select_architecture(logits, table, bound)


def test_top_k_with_minus_inf_scores_and_errors():
    logits, table, bound = _case(3, 1.0)
    scores = [torch.log_softmax(l, 0) for l in logits]
    scores[0] = scores[0].clone()
    scores[0][0] = float("-inf")
    brute = _brute_sorted(logits, table, bound, scores)
    got = ef.top_k_architectures(logits, table, bound, 50, scores=scores)
    assert len(got) == len(brute) and all(a[0] != 0 for a in got)
    with pytest.raises(ValueError, match="k must be"):
        ef.top_k_architectures(logits, table, bound, 0)
    with pytest.raises(ValueError, match="below the minimum latency"):
        ef.top_k_architectures(logits, table, -1.0, 2)


def test_validation_pick_follows_its_rule():
    logits, table, bound = _case(5, 0.1)
    candidates = ef.top_k_architectures(logits, table, bound, 4)
    assert len(candidates) == 4
    seen = []

    def score(arch):  # the least probable candidate scores best; the other three tie
        seen.append(arch)
        return 1.0 if arch == candidates[-1] else 0.0

    pick = ef.validation_pick(logits, table, bound, 4, score)
    assert seen == candidates and pick.candidates == candidates and pick.scores == [0.0, 0.0, 0.0, 1.0]
    assert pick.architecture == candidates[-1]
    tie = ef.validation_pick(logits, table, bound, 4, lambda a: 0.5)  # a tie: the most probable
    assert tie.architecture == candidates[0]
    assert ef.validation_pick(logits, table, bound, 1, score).architecture == ef.select_architecture(logits, table, bound)
    assert ef.validation_pick(logits, table, bound, 4).scores == []  # no score: the most probable
    with pytest.raises(ValueError, match="NaN"):
        ef.validation_pick(logits, table, bound, 4, lambda a: float("nan"))
    # no bound: the k most probable of all architectures (product of categoricals)
    unbounded = ef.validation_pick(logits, None, None, 3)
    brute = _brute_sorted(logits, table, float("inf"))
    assert [ef.architecture_log_probability(a, logits) for a in unbounded.candidates] == pytest.approx(
        [r[0] for r in brute[:3]], abs=1e-12)


def _space(mobilenet_space):
    ss = mobilenet_space.double()
    ss.apply_latency_container(SearchSpaceLatencyContainer(
        "mmac", 1.0, [[float(k + 1) for k in range(n)] for n in ss.layout.n_choices]))
    with torch.no_grad():
        for p in ss.architecture_parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=torch.float64))
    return ss


def test_facade_pick_equals_functional_pick(mobilenet_space):
    """The facade's re-ranked pick is ef.validation_pick with the score computed functionally: each
    candidate's batch norm tuned on the same batches (ef.bn_tune), then the user's score."""
    ss = _space(mobilenet_space)
    g = torch.Generator().manual_seed(0)
    bn_data = [(torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), 0) for _ in range(3)]
    x, y = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (6,), generator=g)
    table = ss.get_latency_container().table(dtype=torch.float64)
    bound = 1.0 + sum(ss.layout.n_choices) * 0.5
    trees = ef.split_search_space(ss)
    apply = ef.make_apply(ss)

    def functional_score(arch):
        buffers = ef.bn_tune(ss, trees.params, trees.buffers, bn_data, architecture=arch)
        with torch.no_grad():
            out, _ = apply(trees.params, buffers, arch, x)
        return -float(Fn.cross_entropy(out, y))

    ss.eval()  # as the user's score sets it
    expected = ef.validation_pick(trees.logits, table, bound, 5, functional_score)

    def user_score(model):
        model.eval()
        return -float(Fn.cross_entropy(model(x), y))

    opt = EnotFixedLatencySearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), bound,
                                          bn_tune_dataloader=bn_data, bn_validation_tune_batches=3,
                                          validation_top_k=5, validation_score=user_score)
    picked = opt.prepare_validation_model()
    assert opt.last_validation_pick.candidates == expected.candidates
    assert opt.last_validation_pick.scores == pytest.approx(expected.scores, rel=1e-12)
    assert picked == expected.architecture and len(set(expected.scores)) > 1
    # the search space is left on the pick with its statistics tuned on those batches
    tuned = ef.bn_tune(ss, trees.params, trees.buffers, bn_data, architecture=picked)
    live = dict(ss.named_buffers())
    for name in ef.batch_norm_buffer_names(ss, picked):
        assert torch.equal(live[name], tuned[name]), name


def test_default_pick_is_unchanged_and_options_are_checked(mobilenet_space):
    ss = _space(mobilenet_space)
    table = ss.get_latency_container().table(dtype=torch.float64)
    bound = 1.0 + sum(ss.layout.n_choices) * 0.5
    opt = EnotFixedLatencySearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), bound)
    assert opt.prepare_validation_model() == ef.select_architecture(tuple(ss.architecture_parameters()), table, bound)
    assert opt.last_validation_pick is None
    with pytest.raises(ValueError, match="needs a validation_score"):
        EnotSearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), validation_top_k=3)
    with pytest.raises(ValueError, match="validation_top_k"):
        EnotSearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), validation_top_k=0,
                            validation_score=lambda m: 0.0)
    unbounded = EnotSearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), validation_top_k=3,
                                    validation_score=lambda m: 0.0)
    assert unbounded.prepare_validation_model() == ss.best_architecture_int  # a tie: the most probable
