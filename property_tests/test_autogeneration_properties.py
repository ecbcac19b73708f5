"""Properties of search-space autogeneration on random inverted-residual blocks: every candidate keeps
the block's shapes, width 1.0 is the block bit for bit, a pruned candidate is the block with the
dropped channels silenced, and a zero-padded kernel computes what the trained one did."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model
from enot.models import SearchVariantsContainer

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish)  # each maps 0 to 0


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only cost time
    yield
    torch.set_num_threads(previous)


class Block(nn.Module):
    def __init__(self, channels: int, hidden: int, kernel: int, squeeze: int | None, act: type[nn.Module]) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act())
        self.dw = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden), act()
        )
        self.se_reduce = None if squeeze is None else nn.Conv2d(hidden, squeeze, 1)
        self.se_expand = None if squeeze is None else nn.Conv2d(squeeze, hidden, 1)
        self.act = act()
        self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.expand(x))
        if self.se_reduce is not None:
            y = y * torch.sigmoid(self.se_expand(self.act(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        return x + self.project(y)


@torch.no_grad()
def _model(seed: int, channels: int, hidden: int, kernel: int, squeeze: int | None, act: type[nn.Module]) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, channels, 1), Block(channels, hidden, kernel, squeeze, act), Block(channels, hidden, kernel, squeeze, act))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.1, 1.6)
            m.bias.normal_(0, 0.2)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _candidates(model: nn.Module, descriptor: TransformationParameters) -> list[nn.Module] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            generated = generate_pruned_search_variants_model(model, (TransformationParameters(), descriptor))
        except ValueError:  # the descriptor changes nothing in any block
            return None
    container = generated[1]
    assert isinstance(container, SearchVariantsContainer)
    return list(container.search_variants)


blocks = st.tuples(
    st.integers(0, 10_000),  # seed
    st.integers(1, 6),  # channels
    st.integers(2, 12),  # hidden
    st.sampled_from([1, 3, 5]),  # kernel
    st.one_of(st.none(), st.integers(1, 4)),  # squeeze-excitation channels
    st.sampled_from(ACTIVATIONS),
)


@settings(max_examples=25, deadline=None)
@given(blocks, st.sampled_from([0.25, 0.5, 0.75]), st.sampled_from([1, 3, 5, 7]))
@torch.no_grad()
def test_candidates_are_the_block_pruned_or_rekernelled(block, width, kernel):
    model = _model(*block)
    original = model[1]
    x = torch.randn(2, block[1], 5, 5)
    expected = original(x)

    pruned = _candidates(model, TransformationParameters(width_mult=width))
    hidden = block[2]
    if pruned is None:  # rounding keeps every channel of every group
        assert max(1, int(width * hidden + 0.5)) == hidden
    else:
        same, candidate = pruned
        assert torch.equal(same(x), expected)
        assert candidate(x).shape == expected.shape
        assert candidate.expand[0].out_channels == max(1, int(width * hidden + 0.5))
        masked = copy.deepcopy(original)
        kept = torch.isin(original.expand[1].weight, candidate.expand[1].weight)
        for norm in (masked.expand[1], masked.dw[1]):
            norm.weight[~kept] = 0
            norm.bias[~kept] = 0
        if original.se_reduce is not None:
            rows = original.se_reduce.weight[:, kept].flatten(1)
            se_kept = (rows[:, None] == candidate.se_reduce.weight.flatten(1)[None]).all(-1).any(1)
            assert int(se_kept.sum()) == candidate.se_reduce.out_channels
            masked.se_reduce.weight[~se_kept] = 0
            masked.se_reduce.bias[~se_kept] = 0
        torch.testing.assert_close(candidate(x), masked(x), rtol=1e-5, atol=1e-5)

    rekernelled = _candidates(model, TransformationParameters(kernel_size=kernel))
    if kernel == block[3]:
        assert rekernelled is None
    else:
        candidate = rekernelled[1]
        assert candidate.dw[0].kernel_size == (kernel, kernel)
        assert candidate(x).shape == expected.shape
        if kernel > block[3]:
            torch.testing.assert_close(candidate(x), expected, rtol=1e-5, atol=1e-5)
        else:
            start = (block[3] - kernel) // 2
            assert torch.equal(candidate.dw[0].weight, original.dw[0].weight[..., start:start + kernel, start:start + kernel])

    removed = _candidates(model, TransformationParameters(width_mult=0.0))
    assert isinstance(removed[1], nn.Identity)
