"""A failed step changes nothing, and a retry reproduces the clean run (issue 12, classes 1 and 9).

Class 1: a non-finite loss in a closure that returns ``None`` is caught from the gradients before the
wrapped optimizer steps.  Class 9: after a failed ``model_step``/``step`` (the closure raises, also
after its backward, or the loss is not finite), parameters, ``.grad``, buffers, the wrapped optimizer's
state, the logits, the sampler key, the selected architecture and the batch-norm loader position are
exactly as before it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

from enot.latency import SearchSpaceLatencyContainer
from enot.models import SearchSpaceModel
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer, EnotSearchOptimizer, EnotTrainOptimizer
from tests._unchanged import assert_same, capture
from tests.spaces import tiny_mobilenet

STEPS, FAIL_AT = 3, 1


class Boom(Exception):
    pass


def _batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)


def _space() -> SearchSpaceModel:
    torch.manual_seed(0)
    space = SearchSpaceModel(tiny_mobilenet())
    with torch.no_grad():
        for p in space.architecture_parameters():
            p.copy_(torch.randn(p.shape))
    return space


def _closure(model, step: int, fault: str | None = None, returns: bool = True):
    """The step's closure; ``fault``: ``"raise"`` (after backward), ``"raise_before"``, ``"nan"``, ``"inf"``."""
    x, y = _batch(step)

    def closure():
        if fault == "raise_before":
            raise Boom("before backward")
        loss = Fn.cross_entropy(model(x), y)
        if fault in ("nan", "inf"):
            loss = loss * float(fault)
        loss.backward()
        if fault == "raise":
            raise Boom("after backward")
        return loss if returns else None

    return closure


def _pretrain(sampler: str = "uniform"):
    space = _space()
    opt = EnotPretrainOptimizer(
        space, torch.optim.SGD(space.model_parameters(), lr=0.05, momentum=0.9), check_recommended_optimizations=False,
        sampler=sampler, seed=3,
    )
    return space, opt


def _bn_loader():
    return [(_batch(50 + i)[0],) for i in range(3)]  # 3 items, 2 per step: passes restart mid-step


def _search(fixed: bool = False, tune: bool = True, bn_scheme: str = "fresh"):
    space = _space()
    user = torch.optim.Adam(space.architecture_parameters(), lr=0.1)
    loader = _bn_loader() if tune else None
    if fixed:
        table = [[float(k + 1) for k in range(n)] for n in space.layout.n_choices]
        space.apply_latency_container(SearchSpaceLatencyContainer("mmac", 0.0, table))
        opt = EnotFixedLatencySearchOptimizer(space, user, 2.0 * len(table), bn_tune_dataloader=loader, bn_tune_batches=2, seed=5)
    else:
        opt = EnotSearchOptimizer(space, user, bn_tune_dataloader=loader, bn_tune_batches=2, seed=5, bn_scheme=bn_scheme)
    return space, opt


def _train():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    return net, EnotTrainOptimizer(net, torch.optim.Adam(net.parameters(), lr=1e-2))


PHASES = {
    "pretrain": _pretrain,
    "pretrain-fair": lambda: _pretrain("fair"),
    "search": _search,
    "search-untuned": lambda: _search(tune=False),
    "search-cached": lambda: _search(bn_scheme="cached"),
    "fixed-latency": lambda: _search(fixed=True),
    "train": _train,
}
FAULTS = ["raise", "inf", "nan-returns-none"]  # raising before backward: test_interrupt_restores_too


def _run(make, fail_with: str | None) -> dict:
    """STEPS good steps; with ``fail_with``, a failing step (state checked unchanged) before step FAIL_AT."""
    model, opt = make()
    for step in range(STEPS):
        if fail_with is not None and step == FAIL_AT:
            opt.zero_grad()
            before = capture(opt)
            fault = fail_with.replace("-returns-none", "")
            error = Boom if fault.startswith("raise") else FloatingPointError
            with pytest.raises(error):
                opt.step(_closure(model, step, fault, returns=not fail_with.endswith("none")))
            assert_same(before, capture(opt), "after the failed step")
        opt.zero_grad()
        opt.step(_closure(model, step))
    return capture(opt)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_failed_step_changes_nothing_and_the_retry_equals_the_clean_run(phase, fault):
    clean = _run(PHASES[phase], None)
    retried = _run(PHASES[phase], fault)
    assert_same(clean, retried, "retried vs clean")


@pytest.mark.parametrize("phase", ["pretrain", "search", "train"])
def test_non_finite_loss_of_a_closure_returning_none_is_named(phase):
    model, opt = PHASES[phase]()
    for step in range(2):
        opt.zero_grad()
        opt.step(_closure(model, step))
    opt.zero_grad()
    with pytest.raises(FloatingPointError) as info:
        opt.step(_closure(model, 2, "nan", returns=False))
    message = str(info.value)
    assert f"{phase} step 2" in message and "is NaN or infinite" in message and "nothing was changed" in message
    opt.step(_closure(model, 2))  # the retry samples the architecture the failed step had
    if phase != "train":
        sampled = opt.last_architectures[0] if phase == "pretrain" else opt.last_sample.architecture
        assert f"architecture {sampled}:" in message
        name = "architecture_logits" if phase == "search" else "original_model"
        assert f"the gradient of '{name}" in message


def test_finite_loss_with_non_finite_gradient_is_caught():
    """sqrt at 0 has a finite value and an infinite derivative: the loss check alone would pass it."""
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    opt = EnotTrainOptimizer(net, torch.optim.SGD(net.parameters(), lr=0.1))

    def closure():
        loss = net(torch.ones(1, 2)).abs().sqrt().sum()
        loss.backward()
        return loss

    with pytest.raises(FloatingPointError, match=r"train step 0: the gradient of 'weight' is NaN or infinite"):
        opt.step(closure)
    assert net.weight.grad is None and torch.equal(net.weight, torch.zeros(1, 2))


@pytest.mark.parametrize("phase", ["pretrain", "pretrain-fair", "search"])
def test_failure_inside_a_ghost_batch_keeps_the_gradients_accumulated_before(phase):
    """model_step(a), failing model_step, model_step(b), step() equals model_step(a), model_step(b), step()."""

    def run(fail: bool) -> dict:
        model, opt = PHASES[phase]()
        opt.zero_grad()
        opt.model_step(_closure(model, 0))
        if fail:
            before = capture(opt)
            with pytest.raises(FloatingPointError):
                opt.model_step(_closure(model, 1, "nan", returns=False))
            assert_same(before, capture(opt))
        opt.model_step(_closure(model, 1))
        opt.step()
        return capture(opt)

    assert_same(run(False), run(True))


def test_fair_pretrain_failing_on_a_later_path_puts_back_the_earlier_paths():
    model, opt = _pretrain("fair")
    calls = []
    x, y = _batch(0)

    def closure():
        calls.append(list(model.forward_architecture))
        Fn.cross_entropy(model(x), y).backward()
        if len(calls) == 2:
            raise Boom("second path")

    before = capture(opt)
    with pytest.raises(Boom):
        opt.step(closure)
    assert len(calls) == 2
    assert_same(before, capture(opt))


def test_interrupt_restores_too():
    """A KeyboardInterrupt (not an Exception) raised before any backward leaves the state as before as well
    (the sampler key, the batch-norm statistics tuned for the step and the loader position included)."""
    model, opt = _search()
    opt.step(_closure(model, 0))
    before = capture(opt)

    def closure():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        opt.step(closure)
    assert_same(before, capture(opt))


def test_state_dict_after_a_failed_search_step_resumes_like_the_clean_run():
    """The batch-norm loader position saved after a failure (items to give again) resumes the clean run."""
    clean_model, clean = _search()
    model, opt = _search()
    for o, m in ((clean, clean_model), (opt, model)):
        o.step(_closure(m, 0))
        o.zero_grad()
    with pytest.raises(Boom):
        opt.step(_closure(model, 1, "raise"))
    assert opt.state_dict()["enot"]["bn_position"] == clean.state_dict()["enot"]["bn_position"]
    resumed_model, resumed = _search()
    resumed_model.load_state_dict(model.state_dict())
    resumed.load_state_dict(opt.state_dict())
    for o, m in ((clean, clean_model), (resumed, resumed_model)):
        o.zero_grad()  # .grad is not part of a state dict
        o.step(_closure(m, 1))
    assert_same(capture(clean), capture(resumed))


def test_failed_cached_search_step_leaves_the_batch_norm_cache_as_it_was():
    space, opt = _search(bn_scheme="cached")
    opt.zero_grad()
    opt.step(_closure(space, 0))
    before = {k: (e.batches, {n: t.clone() for n, t in e.stats.items()}) for k, e in opt._bn_cache.items()}
    opt.zero_grad()
    with pytest.raises(Boom):
        opt.step(_closure(space, 1, "raise"))
    after = {k: (e.batches, e.stats) for k, e in opt._bn_cache.items()}
    assert_same(before, after, "cache after the failed step")
