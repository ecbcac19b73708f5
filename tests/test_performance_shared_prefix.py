"""pretrain_step(share_prefix=True): the model before the first container runs once per batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as Fn

import enot.functional as ef
from enot.models import SearchSpaceModel
from tests.spaces import Nested, tiny_mobilenet

# Sharing changes only the order in which the paths' gradients of the prefix weights are summed.
RTOL, ATOL = 1e-12, 1e-13


def _loss(output, batch):
    return Fn.cross_entropy(output, batch[1])


def _setup(model, shape, classes):
    torch.manual_seed(0)
    space = SearchSpaceModel(model).double()
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(*shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (shape[0],), generator=g))
        for _ in range(3)
    ]
    return space, batches


@pytest.mark.parametrize("model, shape, classes, prefix", [
    (tiny_mobilenet, (8, 1, 12, 12), 10, "original_model.0."),
    (Nested, (4, 1, 8, 8), 3, "original_model.stem."),
])
def test_shared_prefix_equals_unshared_up_to_summation_order(model, shape, classes, prefix):
    space, batches = _setup(model(), shape, classes)
    trees = ef.split_search_space(space)
    apply = ef.make_apply(space)
    opt = ef.sgd(0.1, momentum=0.9)
    states = []
    for share in (False, True):
        state = ef.pretrain_init(trees.params, trees.buffers, opt, ef.random.key(0))
        for batch in batches:
            state, info = ef.pretrain_step(apply, opt, _loss, state, [batch], sampler="fair", share_prefix=share)
        states.append((state, info))
    (plain, plain_info), (shared, shared_info) = states
    assert [type(m).__name__ for m in apply.memo.found_prefix] in (["MobileNetBaseStem"], ["Sequential"])
    assert plain_info["architectures"] == shared_info["architectures"]
    torch.testing.assert_close(shared_info["loss"], plain_info["loss"], rtol=RTOL, atol=ATOL)
    for name in plain.params:
        torch.testing.assert_close(shared.params[name], plain.params[name], rtol=RTOL, atol=ATOL)
    n_paths = max(space.layout.n_choices)
    for name in plain.buffers:
        if not name.startswith(prefix):
            torch.testing.assert_close(shared.buffers[name], plain.buffers[name], rtol=RTOL, atol=ATOL)
        elif name.endswith("num_batches_tracked"):
            # The prefix sees each batch once (as in a plain step), not once per path.
            assert int(shared.buffers[name]) == len(batches)
            assert int(plain.buffers[name]) == len(batches) * n_paths


def test_shared_prefix_does_not_mutate_its_inputs_or_the_module():
    space, batches = _setup(Nested(), (4, 1, 8, 8), 3)
    trees = ef.split_search_space(space)
    before = {n: t.clone() for n, t in {**trees.params, **trees.buffers}.items()}
    module_before = {n: t.clone() for n, t in space.state_dict().items()}
    apply = ef.make_apply(space)
    opt = ef.sgd(0.1)
    state = ef.pretrain_init(trees.params, trees.buffers, opt, ef.random.key(0))
    ef.pretrain_step(apply, opt, _loss, state, batches[:2], sampler="fair", share_prefix=True)
    for name, value in {**trees.params, **trees.buffers}.items():
        assert torch.equal(value, before[name])
    for name, value in space.state_dict().items():
        assert torch.equal(value, module_before[name])
    assert all("forward" not in m.__dict__ for m in space.modules())


def test_shared_prefix_refuses_a_compiled_or_foreign_apply():
    space, batches = _setup(Nested(), (4, 1, 8, 8), 3)
    trees = ef.split_search_space(space)
    opt = ef.sgd(0.1)
    state = ef.pretrain_init(trees.params, trees.buffers, opt, ef.random.key(0))
    apply = ef.make_apply(space)
    with pytest.raises(TypeError, match="make_apply"):
        ef.pretrain_step(lambda *a, **k: apply(*a, **k), opt, _loss, state, batches[:1], share_prefix=True)
    compiled = dataclasses.replace(apply, compiled=True)  # what make_apply(compile=True) makes, uncompiled
    with pytest.raises(ValueError, match="eager apply"):
        ef.pretrain_step(compiled, opt, _loss, state, batches[:1], share_prefix=True)
