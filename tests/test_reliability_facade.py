"""Issue 12, classes 2 and 8: the facade refuses wrong parameter sets and explains unknown options and bounds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import enot.latency
from enot.models import SearchSpaceModel
from enot.optimize import (
    EnotFixedLatencySearchOptimizer,
    EnotPretrainOptimizer,
    EnotSearchOptimizer,
    EnotTrainOptimizer,
    build_enot_optimizer,
)
from tests._unchanged import assert_unchanged, snapshot
from tests.spaces import tiny_mobilenet


@pytest.fixture(scope="module")
def space() -> SearchSpaceModel:
    torch.manual_seed(0)
    ss = SearchSpaceModel(tiny_mobilenet())
    enot.latency.initialize_latency("mmac", ss, (torch.randn(2, 1, 8, 8),))
    return ss


# ------------------------------------------------------------------------ class 2: parameter sets
def _weights(ss):
    return list(ss.model_parameters())


def _logits(ss):
    return list(ss.architecture_parameters())


_WRONG = {
    # case: (phase class, parameters, message)
    "pretrain over logits": (
        EnotPretrainOptimizer, _logits,
        r"holds none of search_space.model_parameters\(\), so this phase would learn nothing \(it holds 3 of "
        r"search_space.architecture_parameters\(\)",
    ),
    "pretrain over another model": (
        EnotPretrainOptimizer, lambda ss: list(nn.Linear(2, 2).parameters()),
        r"none of search_space.model_parameters\(\).*2 parameter\(s\) from outside the search space",
    ),
    "search over weights": (
        EnotSearchOptimizer, _weights,
        r"none of search_space.architecture_parameters\(\), so this phase would learn nothing \(it holds \d+ of "
        r"search_space.model_parameters\(\)",
    ),
    "search over another model": (
        EnotSearchOptimizer, lambda ss: list(nn.Linear(2, 2).parameters()), "from outside the search space"
    ),
}


@pytest.mark.parametrize("case", sorted(_WRONG))
def test_wrong_parameter_set_is_refused_at_construction(space: SearchSpaceModel, case: str) -> None:
    cls, params, message = _WRONG[case]
    optimizer = torch.optim.SGD(params(space), lr=0.1, momentum=0.9)
    before = snapshot(space, optimizer)
    with pytest.raises(ValueError, match=message):
        cls(space, optimizer)
    assert_unchanged(before, space, optimizer)
    phase = "pretrain" if cls is EnotPretrainOptimizer else "search"
    with pytest.raises(ValueError, match=message):
        build_enot_optimizer(phase, space, optimizer)


def test_fixed_latency_search_over_weights_is_refused(space: SearchSpaceModel) -> None:
    bound = enot.latency.max_latency(space)
    with pytest.raises(ValueError, match="architecture_parameters"):
        EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(_weights(space)), bound)


def test_add_param_group_refuses_a_group_of_the_other_phase_and_changes_nothing(space: SearchSpaceModel) -> None:
    pretrain = EnotPretrainOptimizer(space, torch.optim.SGD(_weights(space)[:4], lr=0.1))
    search = EnotSearchOptimizer(space, torch.optim.Adam(_logits(space)[:1], lr=0.1))
    for opt, bad, message in [
        (pretrain, {"params": iter(_logits(space))}, r"group holds only search_space.architecture_parameters\(\)"),
        (search, {"params": _weights(space)[0]}, r"group holds only search_space.model_parameters\(\).*add "
         r"search_space.architecture_parameters\(\) instead"),
    ]:
        groups = copy.copy(opt.param_groups)
        before = snapshot(space, opt)
        with pytest.raises(ValueError, match=message):
            opt.add_param_group(bad)
        assert opt.param_groups == groups
        assert_unchanged(before, space, opt)
    # Right groups go in, from a generator too, and so does a learnable part of the loss.
    pretrain.add_param_group({"params": (p for p in _weights(space)[4:]), "lr": 0.01})
    search.add_param_group({"params": _logits(space)[1:]})
    search.add_param_group({"params": [nn.Parameter(torch.ones(1))]})
    assert len(pretrain.param_groups[1]["params"]) == len(_weights(space)) - 4
    assert len(search.param_groups[1]["params"]) == len(_logits(space)) - 1


def test_right_parameter_sets_are_accepted(space: SearchSpaceModel) -> None:
    """ENOT 2.x scripts that pass search_space.parameters() keep working: the other kind never moves."""
    EnotPretrainOptimizer(space, torch.optim.SGD(_weights(space)[:2], lr=0.1))  # a subset: some layers frozen
    EnotPretrainOptimizer(space, torch.optim.SGD(space.parameters(), lr=0.1))
    EnotPretrainOptimizer(space, torch.optim.SGD([*_weights(space), nn.Parameter(torch.ones(1))], lr=0.1))
    EnotSearchOptimizer(space, torch.optim.Adam(_logits(space)[1:], lr=0.1))
    EnotSearchOptimizer(space, torch.optim.Adam(space.parameters(), lr=0.1))


# ------------------------------------------------------------------------------ class 8: options
@pytest.mark.parametrize(
    ("make", "typo", "closest"),
    [
        (lambda ss, **o: EnotSearchOptimizer(ss, torch.optim.Adam(_logits(ss)), **o), "bn_tune_batchs", "bn_tune_batches"),
        (lambda ss, **o: EnotSearchOptimizer(ss, torch.optim.Adam(_logits(ss)), **o), "sede", "seed"),
        (lambda ss, **o: EnotPretrainOptimizer(ss, torch.optim.SGD(_weights(ss), lr=0.1), **o), "sampeler", "sampler"),
        (
            lambda ss, **o: EnotPretrainOptimizer(ss, torch.optim.SGD(_weights(ss), lr=0.1), **o),
            "check_recommended_optimisations", "check_recommended_optimizations",
        ),
        (
            lambda ss, **o: EnotFixedLatencySearchOptimizer(ss, torch.optim.Adam(_logits(ss)), 1e9, **o),
            "latency_loss_wieght", "latency_loss_weight",
        ),
        (
            lambda ss, **o: build_enot_optimizer("search", ss, torch.optim.Adam(_logits(ss)), **o),
            "bn_validation_tune_batch", "bn_validation_tune_batches",
        ),
    ],
)
def test_unknown_option_lists_every_name_and_suggests_the_closest(space, make, typo, closest) -> None:
    with pytest.raises(ValueError) as caught:
        make(space, **{typo: 3})
    message = str(caught.value)
    assert f"unknown options [{typo!r}] (did you mean {closest!r}?)" in message, message
    for accepted in ("bn_tune_dataloader", "seed") if "Search" in message else ("sampler", "seed"):
        assert accepted in message, message


def test_unknown_option_far_from_every_name_and_train_phase(space: SearchSpaceModel) -> None:
    with pytest.raises(ValueError, match=r"\['sed', 'smapler'\] \(did you mean 'seed' for 'sed', 'sampler' for 'smapler'\?\)"):
        EnotPretrainOptimizer(space, torch.optim.SGD(_weights(space), lr=0.1), sed=1, smapler="fair")
    with pytest.raises(ValueError, match=r"unknown options \['zzz'\]; accepted: keyword parameters \[.*'bn_tune_batches'"):
        EnotSearchOptimizer(space, torch.optim.Adam(_logits(space)), zzz=1)
    with pytest.raises(ValueError, match=r"unknown options \['a', 'b'\]; accepted: keyword parameters \['model', 'optimizer'\], options none"):
        EnotTrainOptimizer(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), a=1, b=2)


@pytest.mark.parametrize(
    "bound",
    [
        torch.tensor(1e9),
        torch.tensor(1e9, dtype=torch.float64),
        torch.tensor([1e9]),
        np.float32(1e9),
        10**9,
    ],
    ids=["0-d float32", "0-d float64", "1-element", "numpy float32", "int"],
)
def test_latency_bound_as_tensor_or_number(space: SearchSpaceModel, bound) -> None:
    opt = EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(_logits(space)), bound)
    assert opt.max_latency_value == 1e9 and type(opt.max_latency_value) is float


def test_min_latency_and_forward_latency_are_accepted_as_bounds(space: SearchSpaceModel) -> None:
    low = enot.latency.min_latency(space)
    assert EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(_logits(space)), low).max_latency_value == low
    with space.selected([0] * len(space.search_variants_containers)):
        latency = space.forward_latency  # a 0-d float64 tensor
    assert latency.dim() == 0
    opt = EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(_logits(space)), latency)
    assert opt.max_latency_value == float(latency)


@pytest.mark.parametrize(
    ("bound", "error", "message"),
    [
        (float("inf"), ValueError, "max_latency_value=inf is not a latency bound; .*use EnotSearchOptimizer"),
        (torch.tensor(float("inf")), ValueError, "is not a latency bound"),
        (float("nan"), ValueError, "must be a number, not NaN .*got nan"),
        (float("-inf"), ValueError, "is not a latency bound"),
        (torch.tensor([1.0, 2.0]), TypeError, "one-element real tensor, got a torch.float32 tensor of shape \\(2,\\)"),
        ("3", TypeError, "must be a real number, got '3'"),
        (True, TypeError, "must be a real number, got True"),
        (-1.0, ValueError, "below the minimum latency"),
    ],
)
def test_bad_latency_bound_is_refused(space: SearchSpaceModel, bound, error, message) -> None:
    with pytest.raises(error, match=message):
        EnotFixedLatencySearchOptimizer(space, torch.optim.Adam(_logits(space)), bound)


def test_infinite_bound_through_build_enot_optimizer(space: SearchSpaceModel) -> None:
    with pytest.raises(ValueError, match="without max_latency_value"):
        build_enot_optimizer("search", space, torch.optim.Adam(_logits(space)), max_latency_value=float("inf"))
