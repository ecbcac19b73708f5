"""The demo's three phases on digits: pretrain the supernet, search under a latency bound, tune."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import enot.functional as ef
from enot import latency
from enot._demo._data import Splits, loader
from enot.models import SearchSpaceModel
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer, EnotTrainOptimizer
from enot.utils import tune_bn_stats

Progress = Callable[..., Iterable[Any]]  # tqdm-like: progress(iterable, desc=..., total=...)


@dataclass
class Settings:
    """Everything the command line sets."""

    seed: int = 0
    max_latency: float | None = None
    latency_fraction: float = 0.35
    batch_size: int = 64
    pretrain_epochs: int = 40
    search_epochs: int = 20
    tune_epochs: int = 10
    samples: int = 24
    bn_tune_batches: int = 4


@dataclass
class Outcome:
    """What the demo found and measured."""

    min_latency: float
    max_latency: float
    bound: float
    architecture: list[int]
    latency: float
    supernet_accuracy: float  # search split, supernet weights, batch norm recalibrated
    accuracy: float  # test split, after tuning
    baseline_architecture: list[int]
    baseline_latency: float
    baseline_supernet_accuracy: float
    baseline_accuracy: float
    probabilities: list[list[list[float]]]  # [step][container][candidate]
    sampled: list[dict[str, Any]]  # {"architecture", "latency", "accuracy"} on the search split
    network: nn.Module
    seconds: dict[str, float] = field(default_factory=dict)


def _cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


@torch.no_grad()
def accuracy(model: nn.Module, split: tuple[torch.Tensor, torch.Tensor], batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` in eval mode (its training flag is restored)."""
    training = model.training
    model.eval()
    x, y = split
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()) for i in range(0, len(y), batch_size)
    )
    model.train(training)
    return correct / len(y)


def initialize(search_space: SearchSpaceModel, splits: Splits, settings: Settings) -> tuple[float, float, float]:
    """Latency container ('mmac', per sample) and the bound; returns ``(min, max, bound)``."""
    latency.initialize_latency("mmac", search_space, (splits.train[0][:16],))
    low, high = latency.min_latency(search_space), latency.max_latency(search_space)
    bound = settings.max_latency
    if bound is None:
        bound = low + settings.latency_fraction * (high - low)
    return low, high, float(bound)


def pretrain(search_space: SearchSpaceModel, splits: Splits, settings: Settings, progress: Progress) -> None:
    """Phase 1: one uniformly sampled path per step, SGD with Nesterov momentum, cosine schedule."""
    train = loader(splits.train, settings.batch_size, shuffle=True, seed=settings.seed)
    search_space.initialize_output_distribution_optimization(splits.train[0][:256])
    optimizer = torch.optim.SGD(search_space.model_parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    enot_optimizer = EnotPretrainOptimizer(search_space, optimizer, seed=settings.seed)
    _train(search_space, enot_optimizer, train, settings.pretrain_epochs, progress, "pretrain")


def _train(model: nn.Module, enot_optimizer: Any, train: Any, epochs: int, progress: Progress, desc: str) -> None:
    """The user's loop of ENOT's tutorials: closure + ``step``, cosine schedule, a progress bar."""
    steps = epochs * len(train)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(enot_optimizer, T_max=max(steps, 1))
    model.train()
    bar = progress(total=steps, desc=desc)
    for _ in range(epochs):
        for x, y in train:
            enot_optimizer.zero_grad()

            def closure() -> torch.Tensor:
                loss = _cross_entropy(model, x, y)
                loss.backward()
                return loss

            loss = enot_optimizer.step(closure)
            scheduler.step()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            bar.update()
    bar.close()


def search(
    search_space: SearchSpaceModel, splits: Splits, settings: Settings, bound: float, progress: Progress
) -> tuple[EnotFixedLatencySearchOptimizer, list[list[list[float]]]]:
    """Phase 2: architecture logits on the search split, paths restricted to the latency bound."""
    bn_loader = loader(splits.train, settings.batch_size, shuffle=True, seed=settings.seed + 1)
    searching = loader(splits.search, settings.batch_size, shuffle=True, seed=settings.seed + 2)
    optimizer = torch.optim.Adam(search_space.architecture_parameters(), lr=0.1)
    enot_optimizer = EnotFixedLatencySearchOptimizer(
        search_space, optimizer, bound, bn_tune_dataloader=bn_loader, bn_tune_batches=settings.bn_tune_batches,
        bn_validation_tune_batches=4 * settings.bn_tune_batches, seed=settings.seed,
    )
    history = [[p.tolist() for p in search_space.architecture_probabilities]]
    bar = progress(total=settings.search_epochs * len(searching), desc="search")
    for _ in range(settings.search_epochs):
        for x, y in searching:
            enot_optimizer.zero_grad()

            def closure() -> torch.Tensor:
                loss = enot_optimizer.modify_loss(_cross_entropy(search_space, x, y))
                loss.backward()
                return loss

            loss = enot_optimizer.step(closure)
            history.append([p.tolist() for p in search_space.architecture_probabilities])
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            bar.update()
    bar.close()
    return enot_optimizer, history


def random_architecture_within(search_space: SearchSpaceModel, bound: float, seed: int) -> list[int]:
    """The baseline: an architecture drawn uniformly from those within ``bound``."""
    table = search_space.get_latency_container().table(dtype=torch.float64)
    uniform = [torch.zeros(n, dtype=torch.float64) for n in search_space.layout.n_choices]
    return ef.sample_feasible_architecture(ef.random.fold_in(ef.random.key(seed), 1), uniform, table, bound)


def architecture_latency(search_space: SearchSpaceModel, architecture: list[int]) -> float:
    table = search_space.get_latency_container().table(dtype=torch.float64)
    return float(ef.architecture_latency(architecture, table))


def supernet_accuracy(
    enot_optimizer: EnotFixedLatencySearchOptimizer, splits: Splits, architecture: list[int]
) -> float:
    """Accuracy on the search split of one path with the supernet's weights (batch norm recalibrated)."""
    search_space = enot_optimizer.search_space
    saved = {n: b.clone() for n, b in search_space.named_buffers()}
    if architecture_latency(search_space, architecture) <= enot_optimizer.max_latency_value:
        enot_optimizer.prepare_validation_model(architecture)
    else:  # the sampled cloud spans the whole space; prepare_validation_model refuses what exceeds the bound
        search_space.sample(architecture)
        batches = enot_optimizer._next_bn_batches(enot_optimizer.bn_validation_tune_batches)
        enot_optimizer._tune_bn(architecture, batches)
    result = accuracy(search_space, splits.search)
    with torch.no_grad():
        for name, buffer in search_space.named_buffers():
            buffer.copy_(saved[name])
    return result


def sample_architectures(
    enot_optimizer: EnotFixedLatencySearchOptimizer, splits: Splits, settings: Settings, progress: Progress
) -> list[dict[str, Any]]:
    """``settings.samples`` architectures drawn uniformly from the whole space, with latency and accuracy."""
    search_space = enot_optimizer.search_space
    key = ef.random.fold_in(ef.random.key(settings.seed), 2)
    sampled = []
    for i in progress(range(settings.samples), desc="sample"):
        architecture = ef.uniform_architecture(ef.random.fold_in(key, i), search_space.layout.n_choices)
        sampled.append({
            "architecture": architecture,
            "latency": architecture_latency(search_space, architecture),
            "accuracy": supernet_accuracy(enot_optimizer, splits, architecture),
        })
    return sampled


def tune(
    search_space: SearchSpaceModel, architecture: list[int], splits: Splits, settings: Settings, progress: Progress, name: str
) -> tuple[nn.Module, float]:
    """Phase 3: extract ``architecture``, recalibrate batch norm, fine-tune; returns ``(network, test accuracy)``."""
    torch.manual_seed(settings.seed)
    network = search_space.get_network_by_indexes(architecture)
    train = loader(splits.train, settings.batch_size, shuffle=True, seed=settings.seed + 3)
    tune_bn_stats(network, train, n_steps=len(train))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-4)
    enot_optimizer = EnotTrainOptimizer(network, optimizer)
    _train(network, enot_optimizer, train, settings.tune_epochs, progress, f"tune {name}")
    network.eval()
    return network, accuracy(network, splits.test)


def run_pipeline(
    search_space: SearchSpaceModel, splits: Splits, settings: Settings, bounds: tuple[float, float, float], progress: Progress
) -> Outcome:
    """Runs every phase; ``bounds`` is :func:`initialize`'s result."""
    low, high, bound = bounds
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    pretrain(search_space, splits, settings, progress)
    lap("pretrain")
    enot_optimizer, history = search(search_space, splits, settings, bound, progress)
    lap("search")
    chosen = enot_optimizer.prepare_validation_model()
    baseline = random_architecture_within(search_space, bound, settings.seed)
    chosen_supernet = supernet_accuracy(enot_optimizer, splits, chosen)
    baseline_supernet = supernet_accuracy(enot_optimizer, splits, baseline)
    sampled = sample_architectures(enot_optimizer, splits, settings, progress)
    lap("sample")
    network, chosen_accuracy = tune(search_space, chosen, splits, settings, progress, "chosen")
    _, baseline_accuracy = tune(search_space, baseline, splits, settings, progress, "baseline")
    lap("tune")
    return Outcome(
        min_latency=low, max_latency=high, bound=bound,
        architecture=chosen, latency=architecture_latency(search_space, chosen),
        supernet_accuracy=chosen_supernet, accuracy=chosen_accuracy,
        baseline_architecture=baseline, baseline_latency=architecture_latency(search_space, baseline),
        baseline_supernet_accuracy=baseline_supernet, baseline_accuracy=baseline_accuracy,
        probabilities=history, sampled=sampled, network=network, seconds=seconds,
    )
