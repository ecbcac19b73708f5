"""`load_state_dict` of the ENOT optimizers checks everything before it loads anything (issue 12, class 4)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from enot.models import SearchSpaceModel, build_mobilenet
from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer, EnotTrainOptimizer
from tests._unchanged import assert_same, capture


def _space(ops=("MIB_k=3_t=3", "conv1x1-skip"), channels=(8, 8)) -> SearchSpaceModel:
    torch.manual_seed(0)
    return SearchSpaceModel(build_mobilenet(
        list(ops), num_classes=3, blocks_out_channels=list(channels), blocks_count=[1, 1], blocks_stride=[1, 2],
        in_channels=1, stem_channels=4, stem_out_channels=8, last_channels=8,
    ))


def _pretrain(space: SearchSpaceModel, steps: int, seed: int = 0) -> EnotPretrainOptimizer:
    opt = EnotPretrainOptimizer(
        space, torch.optim.Adam(space.model_parameters(), lr=1e-2), check_recommended_optimizations=False, seed=seed,
    )
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    for _ in range(steps):
        opt.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(space(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    return opt


BAD_ENTRIES = [
    ("not a dict", lambda e: [1, 2], TypeError, "'enot' entry must be a dict"),
    ("unknown key", lambda e: {**e, "bogus": 1}, ValueError, "['bogus']"),
    ("step count a string", lambda e: {**e, "step_count": "3"}, ValueError, "'step_count' must be a non-negative int"),
    ("negative step count", lambda e: {**e, "step_count": -1}, ValueError, "'step_count' must be a non-negative int"),
    ("key of shape (3,)", lambda e: {**e, "key": torch.zeros(3, dtype=torch.int64)}, ValueError, "shape (2,)"),
    ("float key", lambda e: {**e, "key": torch.zeros(2)}, ValueError, "integer tensor"),
    ("key a list", lambda e: {**e, "key": [1, 2]}, ValueError, "integer tensor"),
    ("shapes garbage", lambda e: {**e, "param_shapes": 7}, ValueError, "'param_shapes'"),
    ("space garbage", lambda e: {**e, "space": "mobilenet"}, ValueError, "'space'"),
]


@pytest.mark.parametrize("case, edit, error, message", BAD_ENTRIES, ids=[c[0] for c in BAD_ENTRIES])
def test_bad_enot_entry_is_refused_before_anything_loads(case, edit, error, message):
    space = _space()
    opt = _pretrain(space, 2)
    later = copy.deepcopy(_pretrain(_space(), 4, seed=3).state_dict())  # loading it would change everything
    later["enot"] = edit(later["enot"])
    before = capture(opt)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        opt.load_state_dict(later)
    assert_same(before, capture(opt))


def test_state_of_another_search_space_is_refused_naming_the_difference():
    opt = _pretrain(_space(), 2)
    before = capture(opt)
    # Other candidates: the recorded space differs (named before the parameter counts that follow from it).
    other = _pretrain(_space(ops=("MIB_k=3_t=3", "MIB_k=5_t=3", "conv1x1-skip")), 2).state_dict()
    with pytest.raises(ValueError, match=r"container 0 was .* with 3 candidates .* with 2; the state belongs to another search"):
        opt.load_state_dict(other)
    assert_same(before, capture(opt))
    # Same candidate counts, other operations: the weights differ in number.
    other = _pretrain(_space(ops=("MIB_k=3_t=3", "MIB_k=5_t=3")), 2).state_dict()
    with pytest.raises(ValueError, match=r"groups of sizes \[50\]; .* have \[35\]; the state belongs to another"):
        opt.load_state_dict(other)
    assert_same(before, capture(opt))
    # Same containers and candidates, other widths: the recorded shapes differ.
    wider = _pretrain(_space(channels=(8, 16)), 2).state_dict()
    with pytest.raises(ValueError, match=r"had shape .* and has .*another model or search space"):
        opt.load_state_dict(wider)
    assert_same(before, capture(opt))


def test_space_record_names_the_container():
    opt = _pretrain(_space(), 1)
    state = opt.state_dict()
    state["enot"]["space"]["n_choices"][1] = 5
    with pytest.raises(ValueError, match=r"container 1 was '.*' with 5 candidates .* here it is '.*' with 2"):
        opt.load_state_dict(state)


def test_plain_torch_state_of_other_shapes_is_refused():
    """A dict without the "enot" entry (a plain torch.optim one) is still checked: momentum of another shape."""
    opt = _pretrain(_space(), 2)
    before = capture(opt)
    wider = _pretrain(_space(channels=(8, 16)), 2).state_dict()
    wider.pop("enot")
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter \d+ of group 0 has shape"):
        opt.load_state_dict(wider)
    assert_same(before, capture(opt))


def test_search_and_train_optimizers_check_too():
    space = _space()
    search = EnotSearchOptimizer(space, torch.optim.SGD(space.architecture_parameters(), lr=0.1))
    state = search.state_dict()
    state["enot"]["bn_position"] = 1.5
    before = capture(search)
    with pytest.raises(ValueError, match="'bn_position' must be a non-negative int"):
        search.load_state_dict(state)
    assert_same(before, capture(search))

    net = nn.Linear(3, 2)
    train = EnotTrainOptimizer(net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    other = nn.Linear(3, 4)
    other_opt = EnotTrainOptimizer(other, torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9))
    other(torch.ones(1, 3)).sum().backward()
    other_opt.step()
    with pytest.raises(ValueError, match=r"parameter 0 of group 0 had shape \(4, 3\) .* has \(2, 3\)"):
        train.load_state_dict(other_opt.state_dict())


def test_good_state_still_loads_and_round_trips():
    opt = _pretrain(_space(), 2)
    source = _pretrain(_space(), 4, seed=3)
    opt.load_state_dict(source.state_dict())
    assert_same(opt.state_dict(), source.state_dict())
