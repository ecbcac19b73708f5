"""Hooks registered on an ENOT optimizer fire (step, state_dict, load_state_dict), with the ENOT optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer, EnotTrainOptimizer


def _space() -> SearchSpaceModel:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), SearchVariantsContainer([nn.Linear(4, 4), nn.Identity()]), nn.Linear(4, 2))
    return SearchSpaceModel(model)


def _make(phase: str):
    if phase == "train":
        model = nn.Linear(3, 2)
        return EnotTrainOptimizer(model, torch.optim.SGD(model.parameters(), lr=0.1)), model
    space = _space()
    if phase == "pretrain":
        opt = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.1),
                                    check_recommended_optimizations=False)
    else:
        opt = EnotSearchOptimizer(space, torch.optim.SGD(space.architecture_parameters(), lr=0.1))
    return opt, space


def _closure(model: nn.Module):
    def closure() -> torch.Tensor:
        loss = model(torch.ones(2, 3)).square().mean()
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("phase", ["train", "pretrain", "search"])
def test_step_hooks_fire_around_step_and_can_be_removed(phase: str) -> None:
    opt, model = _make(phase)
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o, len(args) + len(kwargs))))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o, opt._step_count)))
    opt.model_step(_closure(model))
    assert calls == []
    opt.step()
    assert calls == [("pre", opt, 1), ("post", opt, 1)]  # post runs after the update (step count moved)
    opt.step(_closure(model))  # with a closure: pre before it runs, post after the update
    assert [c[0] for c in calls] == ["pre", "post", "pre", "post"]
    pre.remove()
    post.remove()
    opt.step(_closure(model))
    assert len(calls) == 4


@pytest.mark.parametrize("phase", ["train", "pretrain", "search"])
def test_state_dict_hooks_fire_and_can_change_the_dict(phase: str) -> None:
    opt, model = _make(phase)
    seen = []
    opt.register_state_dict_pre_hook(lambda o: seen.append(("pre", o)))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    state = opt.state_dict()
    assert seen == [("pre", opt)]
    assert state["extra"] == 1 and "enot" in state

    def drop_extra(o, sd):
        seen.append(("load pre", o))
        return {k: v for k, v in sd.items() if k != "extra"}

    opt.register_load_state_dict_pre_hook(drop_extra)
    opt.register_load_state_dict_post_hook(lambda o: seen.append(("load post", o)))
    opt.load_state_dict(state)
    assert seen == [("pre", opt), ("load pre", opt), ("load post", opt)]


def test_hooks_of_the_wrapped_optimizer_still_fire() -> None:
    model = nn.Linear(3, 2)
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    fired = []
    inner.register_step_post_hook(lambda o, a, k: fired.append(o))
    opt = EnotTrainOptimizer(model, inner)
    opt.step(_closure(model))
    assert fired == [inner]
