"""Search spaces: containers, SearchSpaceModel, ready-made ops, build_mobilenet, extraction."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from enot.models import (
    SearchableFuseableSkipConv,
    SearchableMobileInvertedBottleneck,
    SearchSpaceModel,
    SearchVariantsContainer,
    build_mobilenet,
)
from enot.utils import make_portable
from tests.spaces import Nested, tiny_mobilenet


def test_container_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        SearchVariantsContainer([])
    with pytest.raises(TypeError, match="candidate 1"):
        SearchVariantsContainer([nn.ReLU(), "relu"])
    with pytest.raises(ValueError, match="default_operation_index=2"):
        SearchVariantsContainer([nn.ReLU(), nn.Tanh()], default_operation_index=2)
    with pytest.raises(TypeError, match="single"):
        SearchVariantsContainer(nn.ReLU())


def test_container_runs_selected_candidate():
    c = SearchVariantsContainer([nn.ReLU(), nn.Tanh()], default_operation_index=1)
    x = torch.randn(5)
    assert torch.equal(c(x), torch.tanh(x))
    c.active_index = 0
    assert torch.equal(c(x), torch.relu(x))


def test_search_space_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown keyword"):
        SearchSpaceModel(tiny_mobilenet(), foo=1)
    with pytest.raises(ValueError, match="no SearchVariantsContainer"):
        SearchSpaceModel(nn.Linear(2, 2))
    with pytest.raises(TypeError):
        SearchSpaceModel("model")


def test_parameters_split_into_weights_and_logits(nested_space):
    weights = {id(p) for p in nested_space.model_parameters()}
    logits = {id(p) for p in nested_space.architecture_parameters()}
    assert weights.isdisjoint(logits)
    assert weights | logits == {id(p) for p in nested_space.parameters()}
    assert [p.shape[0] for p in nested_space.architecture_parameters()] == [3, 2, 2]
    assert nested_space.layout.n_choices == (3, 2, 2)


def test_containers_in_module_tree_order(nested_space):
    names = nested_space.layout.container_names
    assert names == (
        "original_model.blocks.a",
        "original_model.blocks.a.search_variants.1.0",
        "original_model.b",
    )


def test_sample_validates_and_accepts_old_form(nested_space):
    nested_space.sample([[2], [1], [0]])
    assert nested_space.forward_architecture == [2, 1, 0]
    with pytest.raises(ValueError, match="3 containers"):
        nested_space.sample([0, 0])
    with pytest.raises(ValueError, match="original_model.b.*2 candidates"):
        nested_space.sample([0, 0, 2])
    with pytest.raises(ValueError, match="out of range"):
        nested_space.sample([-1, 0, 0])
    assert nested_space.forward_architecture == [2, 1, 0]  # a rejected architecture changes nothing


def test_best_architecture_and_probabilities(nested_space):
    with torch.no_grad():
        nested_space.architecture_logits[0].copy_(torch.tensor([0.0, 2.0, 1.0]))
        nested_space.architecture_logits[2].copy_(torch.tensor([1.0, 0.0]))
    assert nested_space.best_architecture_int == [1, 0, 0]
    assert nested_space.sample_best_arch() == [1, 0, 0]
    for p in nested_space.architecture_probabilities:
        assert torch.isclose(p.sum(), torch.tensor(1.0))
    arch = nested_space.sample_random_arch(torch.Generator().manual_seed(0))
    assert nested_space.forward_architecture == arch


def _enot_classes(module: nn.Module) -> list[str]:
    return [type(m).__qualname__ for m in module.modules() if type(m).__module__.startswith("enot")]


@pytest.mark.parametrize("space_fn, shape", [(tiny_mobilenet, (3, 1, 16, 16)), (Nested, (3, 1, 8, 8))])
def test_extracted_network_equals_supernet_path(space_fn, shape):
    torch.manual_seed(0)
    space = SearchSpaceModel(space_fn())
    x = torch.randn(*shape)
    space.initialize_output_distribution_optimization(x)
    space.train()
    space(x)  # give batch norm non-trivial statistics
    space.eval()
    for arch in itertools.islice(itertools.product(*map(range, space.layout.n_choices)), 12):
        space.sample(list(arch))
        expected = space(x)
        net = space.get_network_by_indexes(list(arch)).eval()
        assert _enot_classes(net) == []
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
    assert space.forward_architecture == list(arch)  # extraction does not change the selection


def test_extracted_network_is_a_copy(mobilenet_space):
    net = mobilenet_space.get_network_by_indexes([0, 1, 2])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    names = dict(mobilenet_space.named_parameters())
    w = names["original_model.0.ops.0.weight"]
    assert not torch.equal(w, net.state_dict()["0.ops.0.weight"])


def test_state_dict_roundtrip_includes_logits_and_init_flag(mobilenet_space):
    mobilenet_space.initialize_output_distribution_optimization(torch.randn(4, 1, 16, 16))
    with torch.no_grad():
        mobilenet_space.architecture_logits[1].add_(1.5)
    state = mobilenet_space.state_dict()
    assert "architecture_logits.1" in state
    fresh = SearchSpaceModel(tiny_mobilenet())
    fresh.load_state_dict(state)
    assert fresh.output_distribution_optimization_enabled
    for a, b in zip(fresh.state_dict().values(), state.values()):
        assert torch.equal(a, b)


def test_output_distribution_optimization_matches_scales():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        SearchVariantsContainer([nn.Conv2d(4, 4, 3, padding=1), nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1))]),
    )
    with torch.no_grad():
        model[1].search_variants[1][1].weight.mul_(30)
    space = SearchSpaceModel(model)
    x = torch.randn(16, 1, 8, 8)

    def stds():
        h = model[0](x)
        with torch.no_grad():
            return [float(c(h).std()) for c in model[1].search_variants]

    before = stds()
    assert max(before) / min(before) > 5
    buffers = {n: b.clone() for n, b in space.named_buffers()}
    space.initialize_output_distribution_optimization(x)
    after = stds()
    assert max(after) / min(after) < 1.05
    assert space.output_distribution_optimization_enabled
    for n, b in space.named_buffers():
        assert torch.equal(b, buffers[n])
    with pytest.raises(RuntimeError, match="already called"):
        space.initialize_output_distribution_optimization(x)


def test_mobilenet_blocks_and_ops():
    model = build_mobilenet(["MIB_k=3_t=6", "MIB_k=5_t=3", "conv1x1-skip"], blocks_out_channels=[8, 16],
                            blocks_count=[2, 1], blocks_stride=[2, 2], last_channels=32)
    space = SearchSpaceModel(model)
    assert space.layout.n_choices == (3, 3, 3)
    out = space(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    first = space.search_variants_containers[0].search_variants
    assert isinstance(first[0], SearchableMobileInvertedBottleneck) and not first[0].use_residual
    assert isinstance(first[2], SearchableFuseableSkipConv) and not isinstance(first[2].ops, nn.Identity)
    second = space.search_variants_containers[1].search_variants
    assert second[0].use_residual and isinstance(second[2].ops, nn.Identity)
    with pytest.raises(ValueError, match="unknown search op 'MBI_k=3'"):
        build_mobilenet(["MBI_k=3"])
    with pytest.raises(ValueError, match="unknown argument 'e=3'"):
        build_mobilenet(["MIB_k=3_e=3"])
    with pytest.raises(ValueError, match="blocks_count has 1 entries"):
        build_mobilenet(["conv1x1-skip"], blocks_out_channels=[8, 16], blocks_count=[1], blocks_stride=[1, 1])
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SearchableMobileInvertedBottleneck(4, 4, kernel_size=4)


def test_make_portable_rejects_search_space(mobilenet_space):
    with pytest.raises(TypeError, match="get_network_by_indexes"):
        make_portable(mobilenet_space)
    with pytest.raises(TypeError):
        make_portable("net")
