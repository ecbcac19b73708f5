"""Pretrain: the facade and the functional core give the same numbers; unsampled paths stay put."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

import enot.functional as ef
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotPretrainOptimizer
from tests.spaces import Nested, tiny_mobilenet

OPTIMIZERS = {
    "sgd_momentum": (
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda: ef.sgd(0.05, momentum=0.9, weight_decay=1e-3),
    ),
    "sgd_nesterov_dampening0": (
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
        lambda: ef.sgd(0.05, momentum=0.8, nesterov=True),
    ),
    "sgd_dampening": (
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3),
        lambda: ef.sgd(0.05, momentum=0.8, dampening=0.3),
    ),
    "adam": (
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
        lambda: ef.adam(1e-2, weight_decay=1e-3),
    ),
    "adamw": (
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
        lambda: ef.adamw(1e-2, weight_decay=1e-2),
    ),
}


def _batches(n: int, shape=(6, 1, 12, 12), classes: int = 10, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(*shape, generator=g, dtype=dtype), torch.randint(0, classes, (shape[0],), generator=g)) for _ in range(n)]


def _loss(output, batch):
    return Fn.cross_entropy(output, batch[1])


def _facade_and_core(space_fn, opt_name, *, sampler="uniform", ghost=1, steps=3, shape=(6, 1, 12, 12), classes=10,
                     options=None):
    """Trains copies of one search space by the facade and by ``pretrain_step`` (float64).

    ``options`` (facade options beyond ``sampler``/``seed``) with ``sampler="sandwich"`` map to
    ``pretrain_step(sandwich=Sandwich(...))``; the closure then goes through ``modify_loss``."""
    options = dict(options or {})
    torch.manual_seed(0)
    space = SearchSpaceModel(space_fn()).double()
    batches = _batches(steps * ghost, shape, classes)
    space.initialize_output_distribution_optimization(batches[0][0])
    core_space = copy.deepcopy(space)
    make_torch, make_pure = OPTIMIZERS[opt_name]
    enot_opt = EnotPretrainOptimizer(space, make_torch(space.model_parameters()), sampler=sampler, seed=7, **options)
    core_kwargs = {"sampler": sampler}
    if sampler == "sandwich":
        largest, smallest = ef.extreme_architectures(core_space.layout, dict(core_space.named_parameters()))
        core_kwargs = {"sandwich": ef.Sandwich(tuple(largest), tuple(smallest), options.get("sandwich_random", 2),
                                               options.get("distill", True), options.get("temperature", 1.0))}

    trees = ef.split_search_space(core_space)
    pure = make_pure()
    state = ef.pretrain_init(trees.params, trees.buffers, pure, ef.random.key(7))
    apply = ef.make_apply(core_space)
    facade_archs, core_archs = [], []
    for s in range(steps):
        group = batches[s * ghost:(s + 1) * ghost]
        enot_opt.zero_grad()
        for x, y in group:
            def closure(x=x, y=y):
                loss = enot_opt.modify_loss(Fn.cross_entropy(space(x), y))
                loss.backward()
                return loss
            enot_opt.model_step(closure)
            facade_archs += enot_opt.last_architectures
        enot_opt.step()
        state, info = ef.pretrain_step(apply, pure, _loss, state, group, **core_kwargs)
        core_archs += info["architectures"]
    return space, enot_opt, state, facade_archs, core_archs


def _assert_state_equal(space, enot_opt, state, opt_name):
    params = dict(space.named_parameters())
    buffers = dict(space.named_buffers())
    for name, value in state.params.items():
        assert torch.equal(params[name], value), name
    for name, value in state.buffers.items():
        assert torch.equal(buffers[name], value), name
    by_param = {id(p): n for n, p in space.named_parameters()}
    for param, torch_state in enot_opt.state.items():
        name = by_param[id(param)]
        if opt_name.startswith("sgd"):
            assert torch.equal(torch_state["momentum_buffer"], state.opt_state.momentum[name]), name
            assert int(state.opt_state.count[name]) > 0
        else:
            assert torch.equal(torch_state["exp_avg"], state.opt_state.exp_avg[name]), name
            assert torch.equal(torch_state["exp_avg_sq"], state.opt_state.exp_avg_sq[name]), name
            assert float(torch_state["step"]) == float(state.opt_state.count[name]), name
    stepped = {by_param[id(p)] for p in enot_opt.state}
    for name, count in state.opt_state.count.items():
        assert (int(count) > 0) == (name in stepped), name


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_facade_equals_functional_core(opt_name):
    space, enot_opt, state, fa, ca = _facade_and_core(tiny_mobilenet, opt_name, steps=3)
    assert fa == ca
    _assert_state_equal(space, enot_opt, state, opt_name)


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
def test_facade_equals_functional_core_with_ghost_batch_and_fairness(opt_name):
    space, enot_opt, state, fa, ca = _facade_and_core(
        Nested, opt_name, sampler="fair", ghost=2, steps=2, shape=(4, 1, 8, 8), classes=3
    )
    assert fa == ca and len(fa) == 2 * 2 * 3
    _assert_state_equal(space, enot_opt, state, opt_name)


@pytest.mark.parametrize(
    ("opt_name", "space_fn", "options"),
    [
        ("sgd_momentum", tiny_mobilenet, {}),
        ("adam", tiny_mobilenet, {"distill": False, "sandwich_random": 1}),
        ("sgd_nesterov_dampening0", Nested, {"temperature": 2.5, "sandwich_random": 3}),
    ],
)
def test_facade_equals_functional_core_with_sandwich(opt_name, space_fn, options):
    shape, classes = ((6, 1, 12, 12), 10) if space_fn is tiny_mobilenet else ((4, 1, 8, 8), 3)
    space, enot_opt, state, fa, ca = _facade_and_core(
        space_fn, opt_name, sampler="sandwich", ghost=2, steps=2, shape=shape, classes=classes, options=options
    )
    n_paths = 2 + options.get("sandwich_random", 2)
    assert fa == ca and len(fa) == 2 * 2 * n_paths
    largest, smallest = ef.extreme_architectures(space.layout, dict(space.named_parameters()))
    assert fa[0::n_paths] == [largest] * 4 and fa[1::n_paths] == [smallest] * 4
    _assert_state_equal(space, enot_opt, state, opt_name)


def test_distillation_changes_the_students_gradients():
    """distill=True trains the paths after the largest on the teacher's outputs, not on the labels."""
    runs = {}
    for distill in (True, False):
        space, *_ = _facade_and_core(tiny_mobilenet, "sgd_momentum", sampler="sandwich", steps=1,
                                     options={"distill": distill, "sandwich_random": 0})
        runs[distill] = dict(space.named_parameters())
    largest, smallest = ef.extreme_architectures(space.layout, dict(space.named_parameters()))
    only_small = set(ef.path_names(space.layout, smallest)) - set(ef.path_names(space.layout, largest))
    assert only_small
    assert any(not torch.equal(runs[True][n], runs[False][n]) for n in only_small if n in runs[True])


def test_distillation_loss_is_soft_cross_entropy():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    for t in (1.0, 3.0):
        p = torch.softmax(teacher / t, 1)
        kl = (p * (p.log() - torch.log_softmax(student / t, 1))).sum(1).mean() * t * t
        entropy = -(p * p.log()).sum(1).mean() * t * t
        assert torch.allclose(ef.distillation_loss(student, teacher, t), kl + entropy)
    assert torch.allclose(ef.distillation_loss(teacher, teacher), -(torch.softmax(teacher, 1) * torch.log_softmax(teacher, 1)).sum(1).mean())
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    ef.distillation_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None
    with pytest.raises(ValueError, match="one shape"):
        ef.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="tensors"):
        ef.distillation_loss([1.0], torch.zeros(2, 4))


def test_extreme_architectures_count_weights(mobilenet_space):
    layout = mobilenet_space.layout
    params = dict(mobilenet_space.named_parameters())
    largest, smallest = ef.extreme_architectures(layout, params)
    for c, n in enumerate(layout.n_choices):
        sizes = [sum(t.numel() for name, t in params.items() if (c, k) in layout.requirements[name]) for k in range(n)]
        assert sizes[largest[c]] == max(sizes) and sizes[smallest[c]] == min(sizes)


def test_sandwich_bad_input(mobilenet_space):
    opt = torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"need sampler='sandwich'"):
        EnotPretrainOptimizer(mobilenet_space, opt, distill=False)
    with pytest.raises(ValueError, match="n_random"):
        EnotPretrainOptimizer(mobilenet_space, opt, sampler="sandwich", sandwich_random=-1)
    with pytest.raises(ValueError, match="temperature"):
        EnotPretrainOptimizer(mobilenet_space, opt, sampler="sandwich", temperature=0)
    trees = ef.split_search_space(mobilenet_space)
    state = ef.pretrain_init(trees.params, trees.buffers, ef.sgd(0.1), ef.random.key(0))
    apply = ef.make_apply(mobilenet_space)
    largest, smallest = ef.extreme_architectures(mobilenet_space.layout, trees.params)
    batch = (torch.randn(2, 1, 12, 12), torch.randint(0, 10, (2,)))
    good = ef.Sandwich(tuple(largest), tuple(smallest))
    with pytest.raises(ValueError, match="sandwich.largest"):
        ef.pretrain_step(apply, ef.sgd(0.1), _loss, state, [batch], sandwich=good._replace(largest=(0,)))
    with pytest.raises(ValueError, match="sampler='fair'"):
        ef.pretrain_step(apply, ef.sgd(0.1), _loss, state, [batch], sandwich=good, sampler="fair")

    # distill=True with a closure that never calls modify_loss: raises before any student path runs
    mobilenet_space.initialize_output_distribution_optimization(batch[0])
    enot_opt = EnotPretrainOptimizer(mobilenet_space, opt, sampler="sandwich")
    before = {n: t.clone() for n, t in mobilenet_space.named_parameters()}

    def closure():
        Fn.cross_entropy(mobilenet_space(batch[0]), batch[1]).backward()

    with pytest.raises(RuntimeError, match="modify_loss"):
        enot_opt.step(closure)
    assert all(torch.equal(before[n], t) for n, t in mobilenet_space.named_parameters())
    assert all(p.grad is None for p in mobilenet_space.parameters())
    with pytest.raises(RuntimeError, match="inside the closure"):
        enot_opt.modify_loss(torch.zeros(()))


def test_unsampled_candidates_keep_weights_state_and_buffers():
    torch.manual_seed(0)
    space = SearchSpaceModel(tiny_mobilenet())
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,))
    space.initialize_output_distribution_optimization(x)
    opt = torch.optim.SGD(space.model_parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    enot_opt = EnotPretrainOptimizer(space, opt, seed=0)

    def closure():
        loss = Fn.cross_entropy(space(x), y)
        loss.backward()
        return loss

    enot_opt.step(closure)  # momentum buffers exist for the first path now
    before = {n: t.clone() for n, t in space.state_dict().items()}
    momentum = {p: s["momentum_buffer"].clone() for p, s in opt.state.items()}
    enot_opt.zero_grad()
    enot_opt.step(closure)
    arch = enot_opt.last_architectures[0]
    on_path = set(ef.path_names(space.layout, arch))
    after = space.state_dict()
    names = {id(p): n for n, p in space.named_parameters()}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    off_path = {n for n in before if n not in on_path and not n.startswith("architecture_logits")}
    assert changed and changed <= on_path
    assert not (changed & off_path)
    for p, buf in momentum.items():
        if names[id(p)] not in on_path:
            assert torch.equal(opt.state[p]["momentum_buffer"], buf)


def test_pure_step_does_not_mutate_inputs(mobilenet_space):
    x, y = torch.randn(4, 1, 12, 12), torch.randint(0, 10, (4,))
    trees = ef.split_search_space(mobilenet_space)
    pure = ef.adam(1e-2)
    state = ef.pretrain_init(trees.params, trees.buffers, pure, ef.random.key(0))
    snapshot = [t.clone() for t in (*state.params.values(), *state.buffers.values(), state.key)]
    opt_snapshot = [t.clone() for d in state.opt_state for t in d.values()]
    new_state, _ = ef.pretrain_step(ef.make_apply(mobilenet_space), pure, _loss, state, [(x, y)])
    now = [*state.params.values(), *state.buffers.values(), state.key]
    assert all(torch.equal(a, b) for a, b in zip(snapshot, now))
    assert all(torch.equal(a, b) for a, b in zip(opt_snapshot, (t for d in state.opt_state for t in d.values())))
    assert not torch.equal(new_state.key, state.key) and int(new_state.step) == 1
    assert any(not torch.equal(new_state.params[n], state.params[n]) for n in state.params)


def test_non_finite_loss_raises_and_updates_nothing(mobilenet_space):
    mobilenet_space.initialize_output_distribution_optimization(torch.randn(4, 1, 12, 12))
    enot_opt = EnotPretrainOptimizer(mobilenet_space, torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1))
    before = {n: t.clone() for n, t in mobilenet_space.state_dict().items() if "running" not in n and "batches" not in n}

    def closure():
        out = mobilenet_space(torch.randn(4, 1, 12, 12))
        loss = out.sum() * float("nan")
        loss.backward()
        return loss

    with pytest.raises(FloatingPointError, match="pretrain step 0.*non-finite"):
        enot_opt.step(closure)
    after = mobilenet_space.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(p.grad is None for p in mobilenet_space.parameters())

    trees = ef.split_search_space(mobilenet_space)
    state = ef.pretrain_init(trees.params, trees.buffers, ef.sgd(0.1), ef.random.key(0))
    with pytest.raises(FloatingPointError, match="pretrain step 0"):
        ef.pretrain_step(ef.make_apply(mobilenet_space), ef.sgd(0.1),
                        lambda out, b: out.sum() * math.inf, state, [(torch.randn(2, 1, 12, 12), None)])


def test_bad_input_errors(mobilenet_space):
    opt = torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1)
    with pytest.raises(TypeError, match="SearchSpaceModel"):
        EnotPretrainOptimizer(nn.Linear(2, 2), opt)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        EnotPretrainOptimizer(mobilenet_space, "sgd")
    with pytest.raises(ValueError, match=r"unknown options \['bogus'\]"):
        EnotPretrainOptimizer(mobilenet_space, opt, bogus=1)
    with pytest.raises(ValueError, match="sampler"):
        EnotPretrainOptimizer(mobilenet_space, opt, sampler="greedy")

    enot_opt = EnotPretrainOptimizer(mobilenet_space, opt)
    x = torch.randn(2, 1, 12, 12)

    def closure():
        loss = mobilenet_space(x).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="initialize_output_distribution_optimization"):
        enot_opt.step(closure)
    mobilenet_space.initialize_output_distribution_optimization(x)
    enot_opt.model_step(closure)
    with pytest.raises(RuntimeError, match=r"call step\(\) without a closure"):
        enot_opt.step(closure)
    enot_opt.step()
    other = SearchSpaceModel(tiny_mobilenet())  # its optimizer must hold its weights (issue 12, class 2)
    other_opt = torch.optim.SGD(other.model_parameters(), lr=0.1)
    unchecked = EnotPretrainOptimizer(other, other_opt, check_recommended_optimizations=False)
    assert unchecked.search_space is not mobilenet_space and unchecked.model is unchecked.search_space


def test_wrapped_optimizer_interface(mobilenet_space):
    opt = torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1, momentum=0.9)
    enot_opt = EnotPretrainOptimizer(mobilenet_space, opt, check_recommended_optimizations=False)
    assert enot_opt.param_groups is opt.param_groups
    extra = nn.Parameter(torch.zeros(3))
    enot_opt.add_param_group({"params": [extra], "lr": 0.5})
    assert len(opt.param_groups) == 2
    state = enot_opt.state_dict()
    assert {k: v for k, v in state.items() if k != "enot"} == opt.state_dict()
    enot_opt.load_state_dict(state)
    assert isinstance(enot_opt, torch.optim.Optimizer)


def test_lr_scheduler_and_grad_scaler_work(mobilenet_space):
    x, y = torch.randn(4, 1, 12, 12), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1)
    enot_opt = EnotPretrainOptimizer(mobilenet_space, opt, check_recommended_optimizations=False)
    scheduler = torch.optim.lr_scheduler.StepLR(enot_opt, step_size=1, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    before = {n: p.clone() for n, p in mobilenet_space.named_parameters()}
    for _ in range(2):
        enot_opt.zero_grad()

        def closure():
            loss = Fn.cross_entropy(mobilenet_space(x), y)
            scaler.scale(loss).backward()
            return loss

        enot_opt.model_step(closure)
        scaler.step(enot_opt)
        scaler.update()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert any(not torch.equal(p, before[n]) for n, p in mobilenet_space.named_parameters())


def test_tutorial_loop_loss_goes_down():
    """The documented loop: closure + step, cosine schedule, model_step accumulation."""
    torch.manual_seed(0)
    space = SearchSpaceModel(tiny_mobilenet(num_classes=4))
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 1, 12, 12, generator=g)
    data = []
    for _ in range(8):
        y = torch.randint(0, 4, (16,), generator=g)
        data.append((centers[y] + 0.5 * torch.randn(16, 1, 12, 12, generator=g), y))
    space.initialize_output_distribution_optimization(data[0][0])
    opt = torch.optim.SGD(space.model_parameters(), lr=0.2, momentum=0.9)
    enot_opt = EnotPretrainOptimizer(space, opt, seed=0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(enot_opt, T_max=40)
    losses = []
    for epoch in range(40):
        enot_opt.zero_grad()
        if epoch % 2:
            for x, y in data[:2]:
                enot_opt.model_step(lambda x=x, y=y: Fn.cross_entropy(space(x), y).backward())
            enot_opt.step()
        else:
            x, y = data[epoch % 8]

            def closure():
                loss = Fn.cross_entropy(space(x), y)
                loss.backward()
                return loss

            enot_opt.step(closure)
        scheduler.step()
        if epoch in (0, 39):
            with torch.no_grad(), space.selected([0, 1, 2]):  # batch statistics, a fixed path
                losses.append(sum(float(Fn.cross_entropy(space(x), y)) for x, y in data[2:6]) / 4)
    assert losses[-1] < 0.4 * losses[0]


def test_tied_weights_stay_tied_in_the_functional_core():
    """A module used twice (tied weights) gets the same tensor at both places in functional_call."""
    torch.manual_seed(0)
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight  # two modules, one parameter
    model = nn.Sequential(first, SearchVariantsContainer([nn.Tanh(), nn.Linear(4, 4)]), second, nn.Linear(4, 2))
    space = SearchSpaceModel(model).double()
    core_space = copy.deepcopy(space)
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    enot_opt = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.1),
                                     check_recommended_optimizations=False, seed=1)
    trees = ef.split_search_space(core_space)
    assert "original_model.2.weight" not in trees.params  # the alias is listed once
    state = ef.pretrain_init(trees.params, trees.buffers, ef.sgd(0.1), ef.random.key(1))
    apply = ef.make_apply(core_space)
    for _ in range(3):
        enot_opt.zero_grad()
        enot_opt.step(lambda: Fn.cross_entropy(space(x), y).backward())
        state, _ = ef.pretrain_step(apply, ef.sgd(0.1), _loss, state, [(x, y)])
    for name, value in space.named_parameters():
        if name in state.params:
            assert torch.equal(value, state.params[name]), name
