"""ENOT's autogeneration tutorials (2, 8 and the generation step of 6), call for call on tiny data.

Tutorial 8's model is torchvision's ``efficientnet_v2_s`` in place of timm's ``efficientnetv2_s`` (timm is
not a dependency); the three tests took 28 s together on a loaded two-core machine.
"""

from __future__ import annotations

import pytest
import torch
from _tutorial_loops import assert_plain_network, digit_batches, pretrain_loop, search_loop, train_loop
from torch import nn

import enot.autogeneration as autogeneration

pytest.importorskip("sklearn", reason="the tutorials' tests use scikit-learn's digits")

WIDTHS = (1.0, 0.75, 0.5, 0.25, 0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _generated_mobilenet_v2():
    from torchvision.models import mobilenet_v2

    from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model

    my_model = mobilenet_v2(weights=None)
    classifier = my_model.classifier[1]
    my_model.classifier = nn.Linear(in_features=classifier.in_features, out_features=10, bias=True)
    my_model.eval()
    first_block = my_model.features[0]
    generated = generate_pruned_search_variants_model(
        my_model,
        search_variant_descriptors=tuple(TransformationParameters(width_mult=w) for w in WIDTHS),
        excluded_modules=[first_block],
    )
    return my_model, first_block, generated


def test_tutorial_2_search_space_autogeneration(tmp_path):
    from enot.latency import best_arch_latency, max_latency, min_latency
    from enot.models import SearchSpaceModel
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer

    _, _, generated = _generated_mobilenet_v2()
    search_space = SearchSpaceModel(generated)
    loader = digit_batches(size=32)
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)
    pretrain_loop(search_space, EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer), loader[:1])
    torch.save({"model": search_space.state_dict()}, tmp_path / "pretrain.pth")
    search_space.load_state_dict(torch.load(tmp_path / "pretrain.pth")["model"])
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    search_loop(search_space, EnotSearchOptimizer(search_space=search_space, optimizer=optimizer), loader[:1],
                latency_loss_weight=1e-3, latency_type="mmac.thop")
    assert min_latency(search_space) <= best_arch_latency(search_space) <= max_latency(search_space)
    best_model = search_space.get_network_with_best_arch()
    assert_plain_network(best_model)
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3, weight_decay=1e-4), loader[:1])


def test_tutorial_6_generation_then_fixed_latency_search():
    from enot.latency import current_latency, initialize_latency, max_latency, mean_latency, min_latency
    from enot.models import SearchSpaceModel
    from enot.optimize import EnotFixedLatencySearchOptimizer

    _, first_block, generated = _generated_mobilenet_v2()
    search_space = SearchSpaceModel(generated)
    container = initialize_latency("mmac.thop", search_space, (torch.zeros((1, 3, 32, 32)),))
    low, high = min_latency(container), max_latency(container)
    assert low < mean_latency(container) < high
    bound = (low + high) / 2
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.02)
    enot_optimizer = EnotFixedLatencySearchOptimizer(search_space, optimizer, max_latency_value=bound)
    inputs, labels = digit_batches(count=1, size=32)[0]
    enot_optimizer.zero_grad()
    enot_optimizer.step(lambda: enot_optimizer.modify_loss(nn.functional.cross_entropy(search_space(inputs),
                                                                                        labels)).backward())
    search_space.eval()
    enot_optimizer.prepare_validation_model()
    assert current_latency(search_space) <= bound
    best_model = search_space.get_network_by_indexes(search_space.forward_architecture)
    assert_plain_network(best_model)


def test_tutorial_8_autogeneration_efficientnet_v2():
    from torchvision.models import efficientnet_v2_s

    from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model
    from enot.models import SearchSpaceModel
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer

    my_model = efficientnet_v2_s(weights=None, num_classes=10).eval()
    some_excluded_block = my_model.features[4][1]
    generated = generate_pruned_search_variants_model(
        my_model,
        search_variant_descriptors=tuple(TransformationParameters(width_mult=w) for w in WIDTHS),
        excluded_modules=[some_excluded_block],
    )
    search_space = SearchSpaceModel(generated)
    loader = digit_batches(count=1, batch_size=4, size=32)
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)
    pretrain_loop(search_space, EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer), loader)
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    search_loop(search_space, EnotSearchOptimizer(search_space=search_space, optimizer=optimizer), loader,
                latency_loss_weight=1e-3, latency_type="mmac.thop")
    assert_plain_network(search_space.get_network_with_best_arch())
