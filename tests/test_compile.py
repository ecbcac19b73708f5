"""The pretrain step under torch.compile: equal to eager, and graphs bounded by the candidates."""

from __future__ import annotations

import copy
import itertools

import torch
import torch._dynamo
import torch.nn.functional as Fn
from torch._dynamo.utils import counters

import enot.functional as ef
from enot.models import SearchSpaceModel
from tests.spaces import Nested

# Compiled kernels may reorder float32 reductions: results agree with eager to this tolerance.
RTOL, ATOL = 1e-4, 1e-5


def _loss(output, batch):
    return Fn.cross_entropy(output, batch[1])


def _eager_and_compiled(batch_seed: int, n_batches: int):
    """A fresh dynamo cache and counters; two equal ``Nested`` spaces (the second one to compile),
    ``n_batches`` batches and the first space's trees."""
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    eager_space = SearchSpaceModel(Nested())
    compiled_space = copy.deepcopy(eager_space)
    g = torch.Generator().manual_seed(batch_seed)
    batches = [(torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(n_batches)]
    return eager_space, compiled_space, batches, ef.split_search_space(eager_space)


def test_compiled_pretrain_step_equals_eager_and_does_not_recompile_per_architecture():
    eager_space, compiled_space, batches, trees = _eager_and_compiled(batch_seed=0, n_batches=3)
    opt = ef.sgd(0.1, momentum=0.9)

    module_before = {n: t.clone() for n, t in compiled_space.state_dict().items()}
    results = []
    for space, compile in ((eager_space, False), (compiled_space, True)):
        apply = ef.make_apply(space, compile=compile)
        state = ef.pretrain_init(trees.params, trees.buffers, opt, ef.random.key(0))
        for batch in batches:
            state, _ = ef.pretrain_step(apply, opt, _loss, state, [batch], sampler="fair")
        results.append(state)
    eager, compiled = results
    # The pure step leaves the module as it was (compiled graphs once wrote batch-norm statistics
    # into the module's own buffers).
    for name, value in compiled_space.state_dict().items():
        assert torch.equal(value, module_before[name]), name
    for name in eager.params:
        torch.testing.assert_close(compiled.params[name], eager.params[name], rtol=RTOL, atol=ATOL)
    for name in eager.buffers:
        torch.testing.assert_close(compiled.buffers[name], eager.buffers[name], rtol=RTOL, atol=ATOL)

    # Every candidate has run (fair sampling); new architectures must compile nothing more.
    graphs = counters["stats"]["unique_graphs"]
    n_choices = compiled_space.layout.n_choices
    bound = sum(n_choices) + len(n_choices) + 1
    assert 0 < graphs <= bound
    apply = ef.make_apply(compiled_space, compile=True)
    for arch in itertools.product(*map(range, n_choices)):
        ef.path_gradients(apply, trees.params, trees.buffers, list(arch), _loss, batches[0])
    assert counters["stats"]["unique_graphs"] == graphs


def test_compiled_search_step_equals_eager_and_does_not_recompile_per_sample():
    eager_space, compiled_space, batches, trees = _eager_and_compiled(batch_seed=1, n_batches=8)
    opt = ef.adam(0.1)
    module_before = {n: t.clone() for n, t in compiled_space.state_dict().items()}

    results = []
    for space, compile in ((eager_space, False), (compiled_space, True)):
        apply = ef.make_apply(space, compile=compile)
        state = ef.search_init(trees.buffers, trees.logits, opt, ef.random.key(3))
        for batch in batches[:4]:
            state, info = ef.search_step(apply, opt, _loss, trees.params, state, [batch])
        results.append((state, info))
    (eager, eager_info), (compiled, compiled_info) = results
    for name, value in compiled_space.state_dict().items():
        assert torch.equal(value, module_before[name]), name
    assert [s.architecture for s in eager_info["samples"]] == [s.architecture for s in compiled_info["samples"]]
    for a, b in zip(compiled.logits, eager.logits):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    for name in eager.buffers:
        torch.testing.assert_close(compiled.buffers[name], eager.buffers[name], rtol=RTOL, atol=ATOL)

    # Cover every candidate as the path, then new samples (paths and alternatives) compile nothing more.
    apply = ef.make_apply(compiled_space, compile=True)
    n_choices = compiled_space.layout.n_choices
    for arch in itertools.product(*map(range, n_choices)):
        ef.path_gradients(apply, trees.params, trees.buffers, list(arch), _loss, batches[0])
    graphs = counters["stats"]["unique_graphs"]
    assert 0 < graphs <= sum(n_choices) + len(n_choices) + 1
    state = compiled
    for batch in batches[4:]:
        state, _ = ef.search_step(apply, opt, _loss, trees.params, state, [batch])
    assert counters["stats"]["unique_graphs"] == graphs
