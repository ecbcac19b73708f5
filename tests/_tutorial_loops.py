"""Tiny data and the three training loops that ENOT's tutorials run (our own code, written for these tests).

Each loop makes the enot calls a tutorial's loop makes, on one or two batches, so that a tutorial's
sequence of calls runs end to end in seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import nn

from enot.latency import best_arch_latency, initialize_latency, max_latency, mean_latency, min_latency
from enot.models import SearchSpaceModel
from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer

Batch = tuple[torch.Tensor, torch.Tensor]


def digit_batches(count: int = 2, batch_size: int = 8, size: int = 16, channels: int = 3, offset: int = 0) -> list[Batch]:
    """Batches of scikit-learn's digits, upsampled to ``size`` and repeated to ``channels``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    start = offset * batch_size
    images = torch.tensor(digits.images[start:start + count * batch_size], dtype=torch.float32)[:, None] / 16.0
    images = Fn.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).repeat(1, channels, 1, 1)
    labels = torch.tensor(digits.target[start:start + count * batch_size])
    return list(zip(images.split(batch_size), labels.split(batch_size)))


def accuracy(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction.argmax(1) == target).float().mean() * 100


def pretrain_loop(search_space: SearchSpaceModel, enot_optimizer: EnotPretrainOptimizer, loader, scheduler=None) -> float:
    """One epoch of pretraining as the tutorials run it; returns the mean train loss."""
    losses = []
    search_space.train()
    for inputs, labels in loader:
        if not search_space.output_distribution_optimization_enabled:
            search_space.initialize_output_distribution_optimization(inputs)
        enot_optimizer.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(search_space(inputs), labels)
            loss.backward()
            losses.append(loss.item())  # the tutorials' closures return nothing

        enot_optimizer.step(closure)
        if scheduler is not None:
            scheduler.step()
    test_model = search_space.get_network_by_indexes([0] * len(search_space.search_variants_containers))
    test_model.eval()
    with torch.no_grad():
        for inputs, labels in loader:
            accuracy(test_model(inputs), labels)
    return sum(losses) / len(losses)


def search_loop(search_space: SearchSpaceModel, enot_optimizer: EnotSearchOptimizer, loader,
                latency_loss_weight: float | None, latency_type: str | None) -> None:
    """One epoch of search as the tutorials run it (latency initialised on the first batch if asked)."""
    search_space.train()
    for inputs, labels in loader:
        if latency_type and search_space.latency_type is None:
            container = initialize_latency(latency_type, search_space, (inputs,))
            assert min_latency(container) <= mean_latency(container) <= max_latency(container)
        enot_optimizer.zero_grad()

        def closure():
            loss = nn.functional.cross_entropy(search_space(inputs), labels)
            if latency_loss_weight:
                loss += search_space.loss_latency_expectation * latency_loss_weight
            loss.backward()

        enot_optimizer.step(closure)
    probabilities = [p.detach().numpy() for p in search_space.architecture_probabilities]
    assert all(abs(p.sum() - 1) < 1e-5 for p in probabilities)
    search_space.eval()
    search_space.sample_best_arch()
    with torch.no_grad():
        for inputs, labels in loader:
            accuracy(search_space(inputs), labels)
    if search_space.latency_type is not None:
        best_arch_latency(search_space)


def train_loop(model: nn.Module, optimizer: torch.optim.Optimizer, loader) -> None:
    """One epoch of ordinary training of the extracted network."""
    model.train()
    for inputs, labels in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for inputs, labels in loader:
            accuracy(model(inputs), labels)


def assert_plain_network(model: nn.Module) -> None:
    """The extracted network holds no enot class."""
    assert not [m for m in model.modules() if type(m).__module__.startswith("enot.")]
