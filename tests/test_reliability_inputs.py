"""Bad inputs and faults of the second round (docs/reliability.md, rows 11-21): each raises a clear
error naming the bad value and leaves parameters, ``.grad``, buffers, optimizer state, the sampler key
and files exactly as they were (``tests/_unchanged.py``)."""

from __future__ import annotations

import math
import os
import re
import stat

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn

import enot.functional as ef
from enot.latency import SearchSpaceLatencyContainer
from enot.optimize import (
    EnotFixedLatencySearchOptimizer,
    EnotPretrainOptimizer,
    EnotSearchOptimizer,
    EvolutionSearch,
)
from enot.utils import PARAM_SHAPED_STATE, load_checkpoint, save_checkpoint, tune_bn_stats
from tests._unchanged import assert_unchanged, snapshot
from tests.test_reliability_steps import Boom, _batch, _pretrain, _search, _space


def _with_latency(space):
    table = [[float(k + 1) for k in range(n)] for n in space.layout.n_choices]
    space.apply_latency_container(SearchSpaceLatencyContainer("mmac", 0.0, table))
    return space


def _search_step(space, opt, step: int = 0) -> None:
    x, y = _batch(step)

    def closure():
        Fn.cross_entropy(space(x), y).backward()

    opt.zero_grad()
    opt.step(closure)


# ------------------------------------------------------------------ 11: the sampler and underflow
def test_constrained_sampler_does_not_read_an_underflowing_probability_as_zero():
    table = ef.latency_table(0.0, [[1.0, 0.0]])
    logits = [torch.tensor([0.0, -800.0], dtype=torch.float64)]
    before = [l.clone() for l in logits]
    assert ef.select_architecture(logits, table, 0.5) == [1]
    assert ef.sample_feasible_architecture(ef.random.key(0), logits, table, 0.5) == [1]
    assert ef.next_search_sample(ef.random.key(0), logits, table, 0.5)[1].architecture == [1]
    assert all(torch.equal(a, b) for a, b in zip(logits, before))
    with pytest.raises(ValueError, match="no architecture within the latency bound 0.5 has a finite log-probability"):
        ef.sample_feasible_architecture(ef.random.key(0), [torch.tensor([0.0, -math.inf])], table, 0.5)


# --------------------------------------------------------- 12-13: an infinite bound, one validator
@pytest.mark.parametrize("form", ["tensor", "numpy32", "numpy64", "int"])
def test_evolution_search_reads_a_bound_as_the_fixed_latency_optimizer_does(form):
    space = _with_latency(_space())
    value = 2.0 * len(space.layout.n_choices)
    bound = {"tensor": torch.tensor(value), "numpy32": np.float32(value), "numpy64": np.float64(value),
             "int": int(value)}[form]
    search = EvolutionSearch(space, lambda ss: 0.0, 1, max_latency_value=bound, population_size=4)
    fixed = EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(space.architecture_parameters()), bound)
    assert search.max_latency_value == fixed.max_latency_value == value
    latency = space.forward_latency  # a 0-d tensor
    assert EvolutionSearch(space, lambda ss: 0.0, 1, max_latency_value=latency).max_latency_value == float(latency)


def test_infinite_bound_of_evolution_search_is_no_bound_and_the_optimizer_names_its_sibling():
    space = _space()  # no latency: an infinite bound needs none
    assert EvolutionSearch(space, lambda ss: 0.0, 1, max_latency_value=math.inf).max_latency_value is None
    space = _with_latency(space)
    for bad, error, message in ((math.nan, ValueError, "not NaN"), ("3", TypeError, "must be a real number"),
                                (torch.ones(2), TypeError, "one-element real tensor"), (0.5, ValueError, "below the minimum")):
        before = snapshot(space)
        with pytest.raises(error, match=message):
            EvolutionSearch(space, lambda ss: 0.0, 1, max_latency_value=bad)
        assert_unchanged(before, space)
    with pytest.raises(ValueError, match="is not a latency bound; for a search without a bound use EnotSearchOptimizer"):
        EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(space.architecture_parameters()), math.inf)


# ------------------------------------------------------------------------- 14: load_state_dict
def test_the_one_list_of_state_keys_holds_every_param_shaped_state_of_torch_optim():
    found = set()
    for name in ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "RMSprop", "Rprop", "ASGD"):
        for options in ({}, {"momentum": 0.9, "centered": True} if name == "RMSprop" else
                        {"momentum": 0.9} if name == "SGD" else {"amsgrad": True} if name in ("Adam", "AdamW") else {}):
            p = torch.nn.Parameter(torch.randn(3, 2))
            opt = getattr(torch.optim, name)([p], lr=0.01, **options)
            p.grad = torch.randn(3, 2)
            opt.step()
            found |= {k for k, v in opt.state[p].items() if isinstance(v, torch.Tensor) and v.shape == p.shape}
    assert found <= set(PARAM_SHAPED_STATE), sorted(found - set(PARAM_SHAPED_STATE))
    assert {"exp_inf", "momentum_buffer", "exp_avg"} <= found


def _adamax_search():
    space = _space()
    opt = EnotSearchOptimizer(space, torch.optim.Adamax(space.architecture_parameters(), lr=0.1), seed=1)
    _search_step(space, opt)
    return space, opt


def test_load_state_dict_refuses_an_adamax_state_of_another_shape(tmp_path):
    space, opt = _adamax_search()
    state = opt.state_dict()
    first = next(iter(state["state"]))
    state["state"][first]["exp_inf"] = torch.zeros(7)
    before = snapshot(space, opt)
    with pytest.raises(ValueError, match=r"EnotSearchOptimizer.load_state_dict: the optimizer state 'exp_inf' of "
                                         r"parameter 0 of group 0 has shape \(7,\)"):
        opt.load_state_dict(state)
    assert_unchanged(before, space, opt)
    # load_checkpoint runs the same check and says the same.
    path = tmp_path / "c.pt"
    save_checkpoint(path, space, opt)
    payload = torch.load(path, weights_only=True)
    payload["optimizer"]["state"][first]["exp_inf"] = torch.zeros(7)
    torch.save(payload, path)
    before = snapshot(space, opt, [path])
    with pytest.raises(ValueError, match=r"its optimizer state 'exp_inf' of parameter 0 of group 0 has shape \(7,\)"):
        load_checkpoint(path, space, opt)
    assert_unchanged(before, space, opt)


@pytest.mark.parametrize("case", ["no param_groups", "only enot", "no state", "not a dict"])
def test_load_state_dict_names_a_missing_entry(case):
    space, opt = _adamax_search()
    state = opt.state_dict()
    bad = {"no param_groups": {k: v for k, v in state.items() if k != "param_groups"},
           "only enot": {"enot": state["enot"]},
           "no state": {k: v for k, v in state.items() if k != "state"},
           "not a dict": {**state, "state": [1, 2]}}[case]
    message = {"no param_groups": "has no 'param_groups' entry", "only enot": "has no 'state' and no 'param_groups' entry",
               "no state": "has no 'state' entry", "not a dict": "has a 'state' entry of type list"}[case]
    before = snapshot(space, opt)
    with pytest.raises(ValueError, match=f"EnotSearchOptimizer.load_state_dict: the optimizer state {message}"):
        opt.load_state_dict(bad)
    assert_unchanged(before, space, opt)


# ------------------------------------------------------------------------ 15: a non-UTF-8 file
def test_latency_file_that_is_not_utf8_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "latency.json"
    path.write_bytes(b'{"format": "\xff\xfe latency"}')
    container = SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0]])
    before = snapshot(files=[path], container=container.to_dict())
    with pytest.raises(ValueError, match=re.escape(f"{str(path)!r} is not a latency container file (not UTF-8 text: byte 0xff")):
        SearchSpaceLatencyContainer.load_from_file(path)
    with pytest.raises(ValueError, match="not UTF-8"):
        container.load_from_file(path)
    assert_unchanged(before, container=container.to_dict())


# ------------------------------------------------------------- 16: a loader of bare tensors
def test_batch_norm_tuning_on_bare_tensors_says_how_to_pass_them():
    space, opt = _search()
    _search_step(space, opt)
    opt._bn_tune_dataloader = [_batch(60 + i)[0] for i in range(3)]  # bare tensors, as a TensorDataset of inputs gives
    opt._bn_iterator = None
    opt.zero_grad()
    x, y = _batch(1)
    before = snapshot(space, opt)
    with pytest.raises(TypeError, match=r"yields bare tensors \(shape \(4, 1, 8, 8\)\).*"
                                        r"sample_to_model_inputs=lambda batch: \(\(batch,\), \{\}\)"):
        opt.step(lambda: Fn.cross_entropy(space(x), y).backward())
    assert_unchanged(before, space, opt)
    net = _space()
    before = snapshot(net)
    with pytest.raises(TypeError, match="yields bare tensors"):
        tune_bn_stats(net, [_batch(0)[0]])
    assert_unchanged(before, net)
    tune_bn_stats(net, [_batch(0)[0]], sample_to_model_inputs=lambda batch: ((batch,), {}))  # the fix works


# ---------------------------------------------------------------- 17: an option of a sibling class
@pytest.mark.parametrize("option, owner, message", [
    ("max_latency_value", EnotSearchOptimizer, "'max_latency_value' is an option of EnotFixedLatencySearchOptimizer, "
                                               "not of EnotSearchOptimizer"),
    ("max_latency_valu", EnotSearchOptimizer, "'max_latency_valu' looks like 'max_latency_value', which is an option of "
                                              "EnotFixedLatencySearchOptimizer"),
    ("latency_loss_weight", EnotSearchOptimizer, "an option of EnotFixedLatencySearchOptimizer"),
    ("bn_tune_dataloader", EnotPretrainOptimizer, "an option of EnotFixedLatencySearchOptimizer and EnotSearchOptimizer, "
                                                  "not of EnotPretrainOptimizer"),
])
def test_an_option_of_a_sibling_class_names_it(option, owner, message):
    space = _space()
    params = space.architecture_parameters() if owner is EnotSearchOptimizer else space.model_parameters()
    user = torch.optim.SGD(params, lr=0.1)
    before = snapshot(space, user)
    with pytest.raises(ValueError, match=rf"unknown options \[{option!r}\].*{message}"):
        owner(space, user, **{option: 1.0})
    assert_unchanged(before, space, user)


# ------------------------------------------------------------------------- 18: file modes
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        net = torch.nn.Linear(2, 2)
        save_checkpoint(tmp_path / "model.pt", net)
        SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0]]).save_to_file(tmp_path / "latency.json")
        torch.save(net.state_dict(), tmp_path / "plain.pt")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(["model.pt", "latency.json", "plain.pt"], 0o666 & ~umask)
    path = tmp_path / "model.pt"
    path.chmod(0o640)  # an existing file keeps its mode, as open() leaves it
    save_checkpoint(path, torch.nn.Linear(2, 2))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# ----------------------------------------------------------------- 19: leftovers of the first round
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_step_after_your_own_backward_checks_the_gradients(value):
    space, opt = _pretrain()
    x, y = _batch(0)
    space.sample([0] * len(space.layout.n_choices))
    opt.zero_grad()
    (Fn.cross_entropy(space(x), y) * value).backward()
    before = snapshot(space, opt)
    with pytest.raises(FloatingPointError, match=r"EnotPretrainOptimizer.step 0 \(after your own backward\): the "
                                                 r"gradient of .* is NaN or infinite.*the wrapped optimizer did not step"):
        opt.step()
    assert_unchanged(before, space, opt)
    opt.zero_grad()
    Fn.cross_entropy(space(x), y).backward()
    opt.step()  # a finite step goes through


@pytest.mark.parametrize("how", ["in place", "through .data"])
def test_a_closure_that_changes_weights_in_place_is_undone(how):
    space, opt = _pretrain()
    x, y = _batch(0)

    def closure():
        Fn.cross_entropy(space(x), y).backward()
        with torch.no_grad():
            for p in space.model_parameters():
                if how == "in place":
                    p.mul_(3.0)
                else:
                    p.data.copy_(torch.zeros_like(p))
        raise Boom("after changing the weights")

    opt.zero_grad()
    before = snapshot(space, opt)
    with pytest.raises(Boom):
        opt.step(closure)
    assert_unchanged(before, space, opt)


@pytest.mark.skipif(not hasattr(torch._C, "_is_cow_tensor"), reason="torch without copy-on-write tensors")
def test_the_failure_snapshot_copies_no_data_until_a_tensor_is_written():
    space, opt = _pretrain()
    opt.zero_grad()
    snap = opt._snapshot()
    assert all(torch._C._is_cow_tensor(copy) for _, copy in snap["params"] + snap["buffers"])
    first = next(space.model_parameters())
    copy = next(c for p, c in snap["params"] if p is first)
    kept = first.detach().clone()
    with torch.no_grad():
        first.add_(1.0)  # the write gives the parameter its own data; the snapshot keeps the old value
    assert not torch._C._is_cow_tensor(first) and torch.equal(copy, kept)
