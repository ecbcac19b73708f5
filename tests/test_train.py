"""EnotTrainOptimizer: the tune phase's thin wrapper over the user's optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enot.optimize import EnotTrainOptimizer
from tests.conftest import tiny_mobilenet


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)


def test_same_updates_as_the_plain_optimizer() -> None:
    plain, wrapped = _net(), _net()
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    enot_opt = EnotTrainOptimizer(wrapped, torch.optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9))
    for step in range(4):
        x, y = _batch(step)
        opt_plain.zero_grad()
        nn.functional.cross_entropy(plain(x), y).backward()
        opt_plain.step()

        enot_opt.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(wrapped(x), y)
            loss.backward()
            return loss

        loss = enot_opt.step(closure)
        assert isinstance(loss, torch.Tensor)
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        assert torch.equal(a, b)
    assert enot_opt.model is wrapped


def test_ghost_batch_with_model_step_and_closure_returning_none() -> None:
    plain, wrapped = _net(), _net()
    opt_plain = torch.optim.Adam(plain.parameters(), lr=0.01)
    enot_opt = EnotTrainOptimizer(wrapped, torch.optim.Adam(wrapped.parameters(), lr=0.01))
    batches = [_batch(s) for s in range(3)]
    opt_plain.zero_grad()
    for x, y in batches:
        nn.functional.cross_entropy(plain(x), y).backward()
    opt_plain.step()
    enot_opt.zero_grad()
    for x, y in batches:

        def closure(x=x, y=y):
            nn.functional.cross_entropy(wrapped(x), y).backward()  # returns None, as ENOT's tutorials do

        assert enot_opt.model_step(closure) is None
    with pytest.raises(RuntimeError, match="pending"):
        enot_opt.step(lambda: None)
    enot_opt.step()
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        assert torch.equal(a, b)


def test_scheduler_and_param_groups() -> None:
    net = _net()
    enot_opt = EnotTrainOptimizer(net, torch.optim.SGD(net.parameters(), lr=1.0))
    scheduler = torch.optim.lr_scheduler.StepLR(enot_opt, step_size=1, gamma=0.5)
    x, y = _batch(0)
    for _ in range(2):
        enot_opt.zero_grad()
        enot_opt.step(lambda: nn.functional.cross_entropy(net(x), y).backward())
        scheduler.step()
    assert enot_opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_non_finite_loss_drops_gradients() -> None:
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    enot_opt = EnotTrainOptimizer(net, torch.optim.SGD(net.parameters(), lr=0.1))
    x, y = _batch(0)

    def closure():
        loss = nn.functional.cross_entropy(net(x), y) * float("nan")
        loss.backward()
        return loss

    with pytest.raises(FloatingPointError, match="train step 0"):
        enot_opt.step(closure)
    assert all(p.grad is None for p in net.parameters())
    for a, b in zip(before, net.parameters()):
        assert torch.equal(a, b)


def test_rejects_bad_arguments(mobilenet_space) -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="get_network_by_indexes"):
        EnotTrainOptimizer(mobilenet_space, torch.optim.SGD(mobilenet_space.model_parameters(), lr=0.1))
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        EnotTrainOptimizer(net, object())
    with pytest.raises(TypeError, match="nn.Module"):
        EnotTrainOptimizer("model", opt)
    with pytest.raises(ValueError, match="unknown options"):
        EnotTrainOptimizer(net, opt, sampler="fair")


def test_tunes_an_extracted_network(mobilenet_space) -> None:
    network = mobilenet_space.get_network_by_indexes([0, 1, 2])
    enot_opt = EnotTrainOptimizer(network, torch.optim.SGD(network.parameters(), lr=0.05))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)
    losses = []
    for _ in range(5):
        enot_opt.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(network(x), y)
            loss.backward()
            return loss

        losses.append(float(enot_opt.step(closure).detach()))
    assert losses[-1] < losses[0]
