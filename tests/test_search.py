"""Search phase: facade and functional agree, weights never move, the estimator finds the best path."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as Fn

import enot.functional as ef
from enot.latency import SearchSpaceLatencyContainer
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer, build_enot_optimizer
from tests._search_toys import BEST, SCALES, cheapest_latencies, scale_toy_space, toy_batch


def _mobilenet_data(n_batches: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
        for _ in range(n_batches)
    ]


def _loss(output, batch):
    return Fn.cross_entropy(output, batch[1])


EQUIVALENCE = [  # (estimator, batch-norm tuning: False or the scheme, fixed latency)
    (estimator, tune_bn, fixed)
    for estimator in ef.ESTIMATORS  # every registered estimator
    for tune_bn in (False, "fresh", "cached")
    for fixed in (False, True)
]


@pytest.mark.parametrize(("estimator", "tune_bn", "fixed"), EQUIVALENCE)
def test_facade_equals_functional_in_float64_and_weights_do_not_move(mobilenet_space, estimator, tune_bn, fixed):
    ss = mobilenet_space.double()
    table_values = [[float(k + 1) for k in range(n)] for n in ss.layout.n_choices]
    ss.apply_latency_container(SearchSpaceLatencyContainer("mmac", 1.0, table_values))
    table = ss.get_latency_container().table(dtype=torch.float64)
    bound = 1.0 + sum(ss.layout.n_choices) * 0.5 if fixed else None
    with torch.no_grad():
        for p in ss.architecture_parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
            if tune_bn == "cached":  # few architectures, so that statistics are reused and refined
                p.mul_(4.0)
    trees = ef.split_search_space(ss)  # copies: the functional door's inputs
    cached = tune_bn == "cached"
    batches, bn_data = _mobilenet_data(8 if cached else 3), _mobilenet_data(4, seed=1)

    # Facade: the user optimizer holds weights too; they must not move, nor their state.
    weights = list(ss.model_parameters())
    user = torch.optim.Adam([{"params": list(ss.architecture_parameters()), "lr": 0.1}, {"params": weights, "lr": 0.1}], foreach=False)
    common = dict(bn_tune_dataloader=bn_data if tune_bn else None, bn_tune_batches=2, seed=7, estimator=estimator,
                  bn_scheme="cached" if cached else "fresh")
    if fixed:
        opt = EnotFixedLatencySearchOptimizer(ss, user, bound, latency_loss_weight=3.0, **common)
    else:
        opt = EnotSearchOptimizer(ss, user, **common)
    samples = []
    for batch in batches:
        def closure(batch=batch):
            loss = _loss(ss(batch[0]), batch)
            (opt.modify_loss(loss) if fixed else loss).backward()  # returns None

        opt.zero_grad()
        assert opt.step(closure) is None
        samples.append(opt.last_sample)
    for w, before in zip(weights, trees.params.values()):
        assert torch.equal(w, before) and w.requires_grad
    assert all(user.state[w] == {} for w in weights)
    # Functional: the same seed, the same batches, the same numbers.
    state = ef.search_init(trees.buffers, trees.logits, ef.adam(0.1), ef.random.key(7))
    cycle = iter(bn_data * 6)
    extra = dict(table=table, max_latency=bound, latency_loss_weight=3.0) if fixed else {}
    for batch, sample in zip(batches, samples):
        bn = ([[next(cycle)]] if cached else [[next(cycle), next(cycle)]]) if tune_bn else None
        state, info = ef.search_step(ef.make_apply(ss), ef.adam(0.1), _loss, trees.params, state, [batch], bn_tune_data=bn,
                                    estimator=estimator, bn_scheme="cached" if cached else "fresh", bn_tune_batches=2,
                                    **extra)
        assert _same_sample(info["samples"][0], sample)
    for ours, theirs in zip(state.logits, ss.architecture_parameters()):
        assert torch.equal(ours, theirs.detach())
    facade_buffers = dict(ss.named_buffers())
    for name, value in state.buffers.items():
        assert torch.equal(value, facade_buffers[name]), name
    if fixed:
        assert all(float(ef.architecture_latency(s.architecture, table)) <= bound for s in samples)
    if cached:  # the cache was exercised: some architecture's statistics were refined to 2 batches
        assert any(entry.batches == 2 for entry in state.bn_cache.values())


def _same_sample(a, b) -> bool:
    """Same estimator's sample type, equal fields (tensors compared by value)."""
    if type(a) is not type(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, list) and x and isinstance(x[0], torch.Tensor):
            if len(x) != len(y) or not all(torch.equal(u, v) for u, v in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


def test_search_step_is_pure(nested_space):
    ss = nested_space.double()
    trees = ef.split_search_space(ss)
    before = ef.split_search_space(ss)
    state = ef.search_init(trees.buffers, trees.logits, ef.sgd(0.1), ef.random.key(0))
    batch = (torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 1]))
    new_state, _ = ef.search_step(ef.make_apply(ss), ef.sgd(0.1), _loss, trees.params, state, [batch], bn_tune_data=[[batch]])
    for a, b in zip(trees.logits, before.logits):
        assert torch.equal(a, b)
    for name in trees.buffers:
        assert torch.equal(trees.buffers[name], before.buffers[name])
    for name, p in ss.named_parameters():
        if "architecture" not in name:
            assert torch.equal(p, before.params[name])
    assert int(new_state.step) == 1 and not torch.equal(new_state.key, state.key)


def _toy_search(latency_weight: float, seed: int, steps: int = 60) -> list[int]:
    torch.manual_seed(seed)
    ss = scale_toy_space()
    ss.apply_latency_container(SearchSpaceLatencyContainer("mmac", 0.0, cheapest_latencies()))
    head = ss.original_model.head
    opt = EnotSearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters(), lr=0.1), seed=seed)
    for step in range(steps):
        x, _ = toy_batch(100 * seed + step)
        labels = head(x).argmax(1).detach()

        def closure():
            loss = Fn.cross_entropy(ss(x), labels) + latency_weight * ss.loss_latency_expectation
            loss.backward()

        opt.zero_grad()
        opt.step(closure)
    return ss.best_architecture_int


@pytest.mark.parametrize("seed", [0, 1])
def test_search_finds_the_clean_candidate_of_every_container(seed):
    assert _toy_search(0.0, seed) == list(BEST)


def test_large_latency_weight_moves_to_the_cheapest_candidates():
    cheapest = [min(range(4), key=row.__getitem__) for row in cheapest_latencies()]
    assert _toy_search(1.0, 0) == cheapest


def _signal(arch) -> float:
    product = 1.0
    for a, b in zip(arch, BEST):
        factors = list(SCALES)
        factors.insert(b, 1.0)
        product *= factors[a]
    return product


def _fixed_space():
    torch.manual_seed(0)
    ss = scale_toy_space()
    ss.apply_latency_container(SearchSpaceLatencyContainer("mmac", 0.5, cheapest_latencies()))
    return ss


def _feasible_architectures(table, bound):
    return [a for a in itertools.product(range(4), repeat=4) if float(ef.architecture_latency(list(a), table)) <= bound]


def test_fixed_latency_samples_and_selects_within_the_bound():
    bound = 0.5 + 10.0 + 10.0 + 1.0 + 0.1  # two clean candidates fit, not four
    ss = _fixed_space()
    table = ss.get_latency_container().table()
    head = ss.original_model.head
    opt = EnotFixedLatencySearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters(), lr=0.1), bound)
    assert opt.max_latency_value == bound
    for step in range(90):
        x, _ = toy_batch(step)
        labels = head(x).argmax(1).detach()

        def closure():
            opt.modify_loss(Fn.cross_entropy(ss(x), labels)).backward()

        opt.zero_grad()
        opt.step(closure)
        assert float(ef.architecture_latency(ss.forward_architecture, table)) <= bound
        assert float(ef.architecture_latency(opt.last_sample.alternatives, table)) <= bound
    arch = opt.prepare_validation_model()
    assert ss.forward_architecture == arch
    # The selection is the most probable feasible architecture, by brute force over all 256.
    feasible = _feasible_architectures(table, bound)
    logits = tuple(ss.architecture_parameters())
    best = max(feasible, key=lambda a: ef.architecture_log_probability(a, logits))
    assert ef.architecture_log_probability(arch, logits) == pytest.approx(ef.architecture_log_probability(best, logits), abs=1e-9)
    # And it is the best feasible one for the task (largest product of scales: the clean signal is
    # damped least), not merely the cheap, most probable one: it uses the budget.
    assert _signal(arch) == max(_signal(a) for a in feasible) > 0
    assert float(ef.architecture_latency(arch, table)) >= 0.75 * bound
    # Harder logits than the search leaves (a greedy repair of the unconstrained argmax, moving the
    # container that loses least to its fastest candidate, is beaten on 4 of these 6):
    # prepare_validation_model still returns the brute-force optimum.
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        with torch.no_grad():
            for p in ss.architecture_parameters():
                p.copy_(torch.randn(4, generator=g) * 2)
            for p, b in zip(ss.architecture_parameters(), BEST):
                p[b] += 3.0  # the dear clean candidates favoured: the unconstrained argmax breaks the bound
        best = max(feasible, key=lambda a: ef.architecture_log_probability(a, logits))
        chosen = opt.prepare_validation_model()
        assert ef.architecture_log_probability(chosen, logits) == pytest.approx(
            ef.architecture_log_probability(best, logits), abs=1e-9
        )


def test_prepare_validation_model_refuses_a_user_architecture_above_the_bound():
    ss = _fixed_space()
    opt = EnotFixedLatencySearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters(), lr=0.1), 21.6)
    before = ss.forward_architecture
    with pytest.raises(ValueError, match=r"latency 40\.5, above max_latency_value=21\.6"):
        opt.prepare_validation_model(list(BEST))
    assert ss.forward_architecture == before  # nothing changed
    assert opt.prepare_validation_model([3, 3, 3, 0]) == [3, 3, 3, 0] == ss.forward_architecture  # 2.8: within


def test_a_bound_of_zero_gives_a_penalty_of_the_order_of_its_weight():
    ss = SearchSpaceModel(torch.nn.Sequential(SearchVariantsContainer([torch.nn.Identity(), torch.nn.Tanh()])))
    ss.apply_latency_container(SearchSpaceLatencyContainer("mmac", 0.0, [[0.0, 2.0]]))
    opt = EnotFixedLatencySearchOptimizer(ss, torch.optim.SGD(ss.architecture_parameters(), lr=0.1), 0.0)
    penalty = float(opt.modify_loss(torch.zeros(())).detach())
    assert penalty == pytest.approx(0.5)  # E[latency] = 1 of the largest 2, weight 1
    table = ss.get_latency_container().table()
    assert float(ef.latency_penalty(tuple(ss.architecture_parameters()), table, 4.0, 2.0).detach()) == 0.0
    assert float(ef.latency_penalty(tuple(ss.architecture_parameters()), table, 0.5, 2.0).detach()) == pytest.approx(2.0)


def test_fixed_latency_errors():
    ss = _fixed_space()
    user = torch.optim.Adam(ss.architecture_parameters())
    with pytest.raises(ValueError, match=r"minimum latency of the search space \(0\.(9|8999)"):
        EnotFixedLatencySearchOptimizer(ss, user, 0.6)
    # Built before the space has latency (as the resolution searcher needs): the clear error comes at
    # the first use of latencies, and nothing has changed by then.
    bare = scale_toy_space()
    lazy = EnotFixedLatencySearchOptimizer(bare, torch.optim.Adam(bare.architecture_parameters()), 5.0)
    before = [p.detach().clone() for p in bare.architecture_parameters()]
    with pytest.raises(RuntimeError, match="initialize_latency"):
        lazy.step(lambda: None)
    with pytest.raises(RuntimeError, match="initialize_latency"):
        lazy.prepare_validation_model()
    with pytest.raises(RuntimeError, match="initialize_latency"):
        lazy.modify_loss(torch.tensor(1.0))
    assert all(torch.equal(a, b) for a, b in zip(before, bare.architecture_parameters()))
    # Latency applied later: the bound is checked against it at first use.
    bare.apply_latency_container(ss.get_latency_container())
    with pytest.raises(ValueError, match="minimum latency of the search space"):
        EnotFixedLatencySearchOptimizer(bare, torch.optim.Adam(bare.architecture_parameters()), 0.6).step(lambda: None)
    assert isinstance(build_enot_optimizer("search", ss, user, max_latency_value=30.0), EnotFixedLatencySearchOptimizer)
    assert type(build_enot_optimizer("search", ss, user)) is EnotSearchOptimizer
    with pytest.raises(ValueError, match="unknown options"):
        EnotSearchOptimizer(ss, user, sampler="fair")


def test_prepare_validation_model_tunes_batch_norm_and_returns_the_architecture(mobilenet_space):
    ss = mobilenet_space
    data = [(torch.randn(4, 1, 8, 8) * 3 + 2, torch.zeros(4)) for _ in range(3)]
    opt = EnotSearchOptimizer(ss, torch.optim.SGD(ss.architecture_parameters(), lr=0.1), bn_tune_dataloader=data,
                              bn_validation_tune_batches=5)
    assert (opt.bn_tune_batches, opt.bn_validation_tune_batches) == (10, 5)
    arch = [1] * len(ss.layout.n_choices)
    assert opt.prepare_validation_model([[i] for i in arch]) == arch
    assert ss.forward_architecture == arch
    stem_bn = [m for m in ss.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert int(stem_bn.num_batches_tracked) == 5  # cycles through the 3-batch loader
    assert opt.prepare_validation_model() == ss.best_architecture_int


def test_param_groups_and_scheduler(nested_space):
    ss = nested_space
    user = torch.optim.SGD(ss.architecture_parameters(), lr=1.0)
    opt = EnotSearchOptimizer(ss, user)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x = torch.randn(2, 1, 6, 6)
    opt.step(lambda: ss(x).sum().backward())
    scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.5 == user.param_groups[0]["lr"]


def test_state_dict_resumes_the_sampler(nested_space):
    ss = nested_space
    opt = EnotSearchOptimizer(ss, torch.optim.SGD(ss.architecture_parameters(), lr=0.1), seed=3)
    x = torch.randn(2, 1, 6, 6)
    opt.step(lambda: ss(x).sum().backward())
    saved = opt.state_dict()
    other = EnotSearchOptimizer(ss, torch.optim.SGD(ss.architecture_parameters(), lr=0.1))
    other.load_state_dict(saved)
    assert torch.equal(other._key, opt._key)


def test_bn_scheme_is_checked(nested_space):
    ss = nested_space.double()
    with pytest.raises(ValueError, match="unknown bn_scheme 'lazy'"):
        EnotSearchOptimizer(ss, torch.optim.Adam(ss.architecture_parameters()), bn_scheme="lazy")
    trees = ef.split_search_space(ss)
    state = ef.search_init(trees.buffers, trees.logits, ef.sgd(0.1), ef.random.key(0))
    batch = (torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unknown bn_scheme"):
        ef.search_step(ef.make_apply(ss), ef.sgd(0.1), _loss, trees.params, state, [batch], bn_scheme="lazy")
    with pytest.raises(ValueError, match="reduce_buffers"):
        ef.search_step(ef.make_apply(ss), ef.sgd(0.1), _loss, trees.params, state, [batch], bn_tune_data=[[batch]],
                       bn_scheme="cached", reduce_buffers=lambda t: t)
