"""build_enot_optimizer: the right class for each phase, the documented errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enot.optimize import EnotPretrainOptimizer, EnotTrainOptimizer, build_enot_optimizer


def _opt(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1)


def test_pretrain_and_train(mobilenet_space) -> None:
    opt = _opt(mobilenet_space.model_parameters())
    pretrain = build_enot_optimizer("pretrain", mobilenet_space, opt, sampler="fair", seed=3,
                                    check_recommended_optimizations=False)
    assert type(pretrain) is EnotPretrainOptimizer
    assert pretrain.optimizer is opt and pretrain.search_space is mobilenet_space
    assert pretrain.check_recommended_optimizations is False

    network = mobilenet_space.get_network_by_indexes([0, 0, 0])
    train = build_enot_optimizer("train", network, _opt(network.parameters()))
    assert type(train) is EnotTrainOptimizer and train.model is network


def test_search_phase_picks_the_class(mobilenet_space) -> None:
    search = pytest.importorskip("enot.facade._search", reason="search phase (issue 4) not merged yet")
    opt = _opt(mobilenet_space.architecture_parameters())
    assert type(build_enot_optimizer("search", mobilenet_space, opt)) is search.EnotSearchOptimizer
    import enot.latency

    enot.latency.initialize_latency("mmac", mobilenet_space, (torch.randn(1, 1, 16, 16),))
    bound = enot.latency.max_latency(mobilenet_space)
    fixed = build_enot_optimizer("search", mobilenet_space, _opt(mobilenet_space.architecture_parameters()),
                                 max_latency_value=bound)
    assert type(fixed) is search.EnotFixedLatencySearchOptimizer
    assert fixed.max_latency_value == bound


@pytest.mark.parametrize("phase", ["tune", "Pretrain", "", None])
def test_unknown_phase(mobilenet_space, phase) -> None:
    with pytest.raises(ValueError, match="phase_name"):
        build_enot_optimizer(phase, mobilenet_space, _opt(mobilenet_space.model_parameters()))


@pytest.mark.parametrize("phase", ["pretrain", "train"])
def test_unknown_option(mobilenet_space, phase) -> None:
    model = mobilenet_space if phase == "pretrain" else mobilenet_space.get_network_by_indexes([0, 0, 0])
    with pytest.raises(ValueError, match="unknown options.*learning_rate"):
        build_enot_optimizer(phase, model, _opt(model.parameters()), learning_rate=0.1)


@pytest.mark.parametrize("phase", ["pretrain", "search"])
def test_plain_model_for_a_search_space_phase(phase) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="SearchSpaceModel"):
        build_enot_optimizer(phase, model, _opt(model.parameters()))


def test_search_space_for_the_train_phase(mobilenet_space) -> None:
    with pytest.raises(TypeError, match="get_network_by_indexes"):
        build_enot_optimizer("train", mobilenet_space, _opt(mobilenet_space.parameters()))


@pytest.mark.parametrize("phase", ["pretrain", "search", "train"])
def test_not_an_optimizer(mobilenet_space, phase) -> None:
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        build_enot_optimizer(phase, mobilenet_space, object())
    inner = _opt(mobilenet_space.model_parameters())
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        build_enot_optimizer(phase, mobilenet_space, EnotTrainOptimizer(nn.Linear(1, 1), inner))
