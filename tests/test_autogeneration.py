"""Search-space autogeneration on randomly initialised torchvision models (no downloads) and own modules."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig
from torchvision.models.resnet import Bottleneck, ResNet

from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model
from enot.latency import initialize_latency
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer

TESTS_DIR = Path(__file__).resolve().parent
WIDTHS = (1.0, 0.75, 0.5, 0.25, 0.0)
BY_WIDTH = tuple(TransformationParameters(width_mult=w) for w in WIDTHS)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@torch.no_grad()
def _randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Distinct batch-norm parameters and statistics (torchvision initialises gamma to 1, beta to 0), so
    that which channels are kept matters and an exact reproduction is not a coincidence."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.copy_(torch.rand(n, generator=g) * 1.5 + 0.1)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def _generate(model: nn.Module, descriptors=BY_WIDTH, **kwargs) -> tuple[nn.Module, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generated = generate_pruned_search_variants_model(model, search_variant_descriptors=descriptors, **kwargs)
    return generated, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _mobilenet() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_norms(torchvision.models.mobilenet_v2(weights=None, num_classes=10))


def _small_efficientnet_v2() -> nn.Module:
    """EfficientNet-V2-S's structure at a small size: Fused-MBConv stages (expansion 1 and 4), then
    MBConv stages with squeeze-excitation."""
    torch.manual_seed(0)
    setting = [
        FusedMBConvConfig(1, 3, 1, 16, 16, 2),
        FusedMBConvConfig(4, 3, 2, 16, 24, 2),
        MBConvConfig(4, 3, 2, 24, 32, 3),
    ]
    model = EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=64)
    return _randomise_norms(model)


def _hidden(block: nn.Module) -> int:
    """Inner width of a block: out_channels of its first convolution."""
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d)).out_channels


def _round_half_up(w: float, n: int) -> int:
    return max(1, int(w * n + 0.5))


# ------------------------------------------------------------------------------------ MobileNetV2
def test_mobilenet_v2_containers_candidates_and_shapes():
    model = _mobilenet()
    before = copy.deepcopy(model.state_dict())
    generated, messages = _generate(model)

    containers = {n: m for n, m in generated.named_modules() if isinstance(m, SearchVariantsContainer)}
    assert sorted(containers, key=lambda n: int(n.split(".")[1])) == [f"features.{i}" for i in range(2, 18)]
    residual = {3, 5, 6, 8, 9, 10, 12, 13, 15, 16}
    for i in range(2, 18):
        container = containers[f"features.{i}"]
        original = model.features[i]
        assert container.n_choices == (5 if i in residual else 4)
        hidden = _hidden(original)
        for w, candidate in zip(WIDTHS, container.search_variants):
            if w == 0.0:
                assert isinstance(candidate, nn.Identity)
            else:
                assert _hidden(candidate) == _round_half_up(w, hidden)
    # The user's model is untouched.
    assert not any(isinstance(m, SearchVariantsContainer) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Stem, the block without inner channels or residual, the last conv and the classifier are listed.
    assert len(messages) == 1
    for name in ("features.0 ", "features.1 ", "features.18 ", "classifier "):
        assert name in messages[0]


@torch.no_grad()
def test_candidates_keep_the_block_shapes():
    model = _mobilenet()
    generated, _ = _generate(model)
    x = torch.randn(2, 3, 32, 32)
    for i, original in enumerate(model.features):
        y = original(x)
        node = generated.features[i]
        if isinstance(node, SearchVariantsContainer):
            for candidate in node.search_variants:
                assert candidate.eval()(x).shape == y.shape
        x = y


@torch.no_grad()
def test_width_one_is_the_original_model_exactly():
    model = _mobilenet()
    generated, _ = _generate(model)
    space = SearchSpaceModel(generated).eval()
    x = torch.randn(3, 3, 40, 40)
    space.sample([0] * len(space.search_variants_containers))
    assert torch.equal(space(x), model(x))
    # Also block by block, and the candidate is the block's own class.
    assert type(generated.features[3].search_variants[0]) is type(model.features[3])
    h = model.features[:3](x)
    assert torch.equal(generated.features[3].search_variants[0](h), model.features[3](h))


@torch.no_grad()
def test_pruned_candidate_keeps_the_most_important_channels_and_equals_the_masked_block():
    model = _mobilenet()
    generated, _ = _generate(model)
    original = model.features[5]  # residual: 32 -> 192 -> 32
    candidate = generated.features[5].search_variants[2]  # width 0.5
    gamma = original.conv[0][1].weight
    kept = torch.sort(torch.topk(gamma.abs() + original.conv[1][1].weight.abs(), 96).indices).values
    assert torch.equal(candidate.conv[0][1].weight, gamma[kept])
    assert torch.equal(candidate.conv[0][0].weight, original.conv[0][0].weight[kept])
    assert torch.equal(candidate.conv[1][0].weight, original.conv[1][0].weight[kept])
    assert torch.equal(candidate.conv[2].weight, original.conv[2].weight[:, kept])
    # Zeroing the dropped channels' batch-norm affine parameters silences them (ReLU6(0) = 0): the
    # pruned candidate computes exactly that.
    masked = copy.deepcopy(original)
    dropped = torch.ones(192, dtype=torch.bool)
    dropped[kept] = False
    for norm in (masked.conv[0][1], masked.conv[1][1]):
        norm.weight[dropped] = 0
        norm.bias[dropped] = 0
    x = torch.randn(2, 32, 8, 8)
    torch.testing.assert_close(candidate(x), masked(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(candidate(x), original(x), atol=1e-3)


@torch.no_grad()
def test_width_zero_removes_the_branch():
    model = _mobilenet()
    generated, _ = _generate(model)
    x = torch.randn(2, 24, 8, 8)
    assert torch.equal(generated.features[3].search_variants[4](x), x)
    assert generated.features[2].n_choices == 4  # no residual: no removed candidate


@torch.no_grad()
def test_kernel_size_pads_or_crops_the_depthwise_kernel():
    model = _mobilenet()
    descriptors = (TransformationParameters(), TransformationParameters(kernel_size=5), TransformationParameters(kernel_size=1))
    generated, _ = _generate(model, descriptors)
    original = model.features[5]
    same, padded, cropped = generated.features[5].search_variants
    w = original.conv[1][0].weight
    assert padded.conv[1][0].weight.shape[-2:] == (5, 5) and padded.conv[1][0].padding == (2, 2)
    assert torch.equal(padded.conv[1][0].weight[..., 1:4, 1:4], w)
    ring = torch.ones(5, 5, dtype=torch.bool)
    ring[1:4, 1:4] = False
    assert torch.all(padded.conv[1][0].weight[..., ring] == 0)
    assert torch.equal(cropped.conv[1][0].weight, w[..., 1:2, 1:2]) and cropped.conv[1][0].padding == (0, 0)
    x = torch.randn(2, 32, 9, 9)
    torch.testing.assert_close(padded(x), original(x), rtol=1e-5, atol=1e-5)  # zero padding keeps the function
    assert cropped(x).shape == original(x).shape
    # The expansion-1 block (depthwise conv on its input channels, no residual) gets kernel candidates.
    assert [c.conv[0][0].kernel_size for c in generated.features[1].search_variants] == [(3, 3), (5, 5), (1, 1)]
    # Stride-2 blocks keep their output shape too.
    stride2 = generated.features[4].search_variants
    y = model.features[4](torch.randn(1, 24, 9, 9))
    assert all(c(torch.randn(1, 24, 9, 9)).shape == y.shape for c in stride2)


def test_depth_mult_removes_the_trailing_blocks_of_each_stage():
    model = _mobilenet()
    descriptors = (TransformationParameters(width_mult=1.0), TransformationParameters(depth_mult=0.5))
    generated, messages = _generate(model, descriptors)
    containers = sorted(int(n.split(".")[1]) for n, m in generated.named_modules() if isinstance(m, SearchVariantsContainer))
    # Stages of MobileNetV2 (features 2-3, 4-6, 7-10, 11-13, 14-16, 17): keep ceil(n / 2) blocks of each.
    assert containers == [3, 6, 9, 10, 13, 16]
    for i in containers:
        first, removed = generated.features[i].search_variants
        assert type(first) is type(model.features[i]) and isinstance(removed, nn.Identity)
    assert "features.2 (InvertedResidual: the descriptors give it no candidate other than itself)" in messages[0]


# ------------------------------------------------------------------------------------------ ResNet
@torch.no_grad()
def test_resnet18_basic_blocks():
    torch.manual_seed(0)
    model = _randomise_norms(torchvision.models.resnet18(weights=None, num_classes=10))
    generated, messages = _generate(model)
    counts = {n: m.n_choices for n, m in generated.named_modules() if isinstance(m, SearchVariantsContainer)}
    expected = {f"layer{s}.{b}": 5 if (s == 1 or b == 1) else 4 for s in range(1, 5) for b in range(2)}
    assert counts == expected
    for w, candidate in zip(WIDTHS[:4], generated.layer2[0].search_variants):
        assert candidate.conv1.out_channels == candidate.conv2.in_channels == _round_half_up(w, 128)
    x = torch.randn(2, 64, 8, 8)
    removed = generated.layer1[1].search_variants[4]
    assert torch.equal(removed(x), torch.relu(x))  # what the block does after its residual add stays
    space = SearchSpaceModel(generated).eval()
    x = torch.randn(2, 3, 32, 32)
    space.sample([0] * 8)
    assert torch.equal(space(x), model(x))
    assert "conv1 (Conv2d: a single layer, not a block)" in messages[0]


@torch.no_grad()
def test_resnet_bottleneck_blocks():
    torch.manual_seed(0)
    model = _randomise_norms(ResNet(Bottleneck, [1, 2, 1, 1], num_classes=10, width_per_group=16))
    generated, _ = _generate(model, BY_WIDTH[::2])
    block = generated.layer2[1].search_variants
    assert len(block) == 3
    assert (block[1].conv1.out_channels, block[1].conv2.out_channels, block[1].conv3.in_channels) == (16, 16, 16)
    x = torch.randn(2, 512, 4, 4)
    assert torch.equal(block[2](x), torch.relu(x))
    assert torch.equal(block[0](x), model.layer2[1](x))
    assert generated.layer2[0].n_choices == 2  # downsampling block: widths 1.0 and 0.5 only


# ----------------------------------------------------------------------------------- EfficientNet-V2
@torch.no_grad()
def test_efficientnet_v2_fused_and_mbconv_blocks():
    model = _small_efficientnet_v2()
    generated, messages = _generate(model)
    counts = {n: m.n_choices for n, m in generated.named_modules() if isinstance(m, SearchVariantsContainer)}
    # Fused-MBConv with expansion 1: residual, nothing inside to prune -> widths 1.0 and 0.0 only.
    assert counts == {"features.1.0": 2, "features.1.1": 2, "features.2.0": 4, "features.2.1": 5,
                      "features.3.0": 4, "features.3.1": 5, "features.3.2": 5}
    mbconv = generated.features[3][1].search_variants[2]  # width 0.5: expanded 128 -> 64, SE 8 -> 4
    assert mbconv.block[0][0].out_channels == 64 and mbconv.block[1][0].groups == 64
    assert (mbconv.block[2].fc1.in_channels, mbconv.block[2].fc1.out_channels) == (64, 4)
    assert mbconv.block[2].fc2.out_channels == 64 and mbconv.block[3][0].in_channels == 64
    assert isinstance(generated.features[1][1].search_variants[1], nn.Identity)
    space = SearchSpaceModel(generated).eval()
    x = torch.randn(2, 3, 32, 32)
    space.sample([0] * len(counts))
    assert torch.equal(space(x), model(x))
    for _ in range(3):
        space.sample_random_arch()
        assert space(x).shape == (2, 10)


@torch.no_grad()
def test_pruned_mbconv_equals_the_masked_block():
    """Both inner groups of an MBConv are pruned: the expanded channels (expansion conv, depthwise conv,
    squeeze-excitation scale, projection) and the squeeze-excitation's own channels."""
    model = _small_efficientnet_v2()
    generated, _ = _generate(model)
    original, candidate = model.features[3][1], generated.features[3][1].search_variants[2]  # width 0.5
    masked = copy.deepcopy(original)
    kept = torch.isin(original.block[0][1].weight, candidate.block[0][1].weight)
    rows = original.block[2].fc1.weight[:, kept].flatten(1)  # fc1's rows on the kept input channels
    se_kept = (rows[:, None] == candidate.block[2].fc1.weight.flatten(1)[None]).all(-1).any(1)
    assert int(kept.sum()) == 64 and int(se_kept.sum()) == 4
    for norm in (masked.block[0][1], masked.block[1][1]):
        norm.weight[~kept] = 0
        norm.bias[~kept] = 0
    masked.block[2].fc1.weight[~se_kept] = 0  # SiLU(0) = 0: the dropped squeeze channels are silent
    masked.block[2].fc1.bias[~se_kept] = 0
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(candidate(x), masked(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(candidate(x), original(x), atol=1e-3)


def test_efficientnet_v2_s_block_count():
    model = torchvision.models.efficientnet_v2_s(weights=None, num_classes=10)
    generated, _ = _generate(model, BY_WIDTH[:2])
    containers = [m for m in generated.modules() if isinstance(m, SearchVariantsContainer)]
    assert len(containers) == 40 - 2  # the two expansion-1 Fused-MBConv blocks have nothing to prune


# ------------------------------------------------------------------------------ MACs and pipeline
def test_macs_fall_with_width():
    model = _mobilenet()
    generated, _ = _generate(model)
    space = SearchSpaceModel(generated)
    container = initialize_latency("mmac", space, (torch.randn(1, 3, 32, 32),))
    for latencies in container.operations_latencies:
        assert all(a > b for a, b in zip(latencies, latencies[1:]))
    totals = [
        container.constant_latency + sum(lat[min(i, len(lat) - 1)] for lat in container.operations_latencies)
        for i in range(len(WIDTHS))
    ]
    assert all(a > b for a, b in zip(totals, totals[1:]))


def test_pretrain_search_and_extract_run(tmp_path: Path):
    model = _mobilenet()
    generated, _ = _generate(model, excluded_modules=[model.features[0]])
    space = SearchSpaceModel(generated)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
    space.initialize_output_distribution_optimization(x)

    pretrain = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.01, momentum=0.9))
    before = [p.detach().clone() for p in space.model_parameters()]

    def closure():
        loss = nn.functional.cross_entropy(space(x), y)
        loss.backward()

    space.train()
    pretrain.zero_grad()
    pretrain.step(closure)
    assert any(not torch.equal(a, b) for a, b in zip(before, space.model_parameters()))

    initialize_latency("mmac", space, (x[:1],))
    search = EnotSearchOptimizer(space, torch.optim.Adam(space.architecture_parameters(), lr=0.1))
    logits = [p.detach().clone() for p in space.architecture_parameters()]

    def search_closure():
        loss = nn.functional.cross_entropy(space(x), y) + 1e-3 * space.loss_latency_expectation
        loss.backward()

    search.zero_grad()
    search.step(search_closure)
    assert any(not torch.equal(a, b) for a, b in zip(logits, space.architecture_parameters()))

    network = space.get_network_with_best_arch().eval()
    space.eval()
    space.sample(space.best_architecture_int)
    with torch.no_grad():
        torch.testing.assert_close(network(x), space(x), rtol=0, atol=0)
    # The extracted network, and a ResNet one whose removed blocks are torch.fx GraphModules, load
    # and compute the same where enot cannot be imported (one interpreter for both: it is slow to
    # start; it first checks that importing enot does not import torchvision).
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    resnet_space = SearchSpaceModel(_generate(resnet, BY_WIDTH[::4])[0])
    resnet_network = resnet_space.get_network_by_indexes([1, 0, 1, 0, 1]).eval()  # the 5 residual blocks
    assert sum(isinstance(m, torch.fx.GraphModule) for m in resnet_network.modules()) == 3
    with torch.no_grad():
        for i, net in enumerate((network, resnet_network)):
            torch.save(net, tmp_path / f"net{i}.pt")
            torch.save({"x": x, "expected": net(x)}, tmp_path / f"io{i}.pt")
    _load_without_enot(tmp_path, 2)


def _load_without_enot(tmp_path: Path, count: int) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import enot, enot.autogeneration
        assert "torchvision" not in sys.modules, "importing enot imported torchvision"
        for name in [n for n in sys.modules if n == "enot" or n.startswith("enot.")]:
            del sys.modules[name]
        sys.modules["enot"] = None  # import enot now fails
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from _torchvision_compat import define_torchvision_op_schemas
        define_torchvision_op_schemas()
        import torch
        torch.set_num_threads(1)  # as in the test, so that the same kernels give the same bits
        for i in range({count}):
            net = torch.load({str(tmp_path)!r} + f"/net{{i}}.pt", weights_only=False)
            io = torch.load({str(tmp_path)!r} + f"/io{{i}}.pt")
            assert not any(type(m).__module__.startswith("enot") for m in net.modules())
            with torch.no_grad():
                torch.testing.assert_close(net(io["x"]), io["expected"], rtol=0, atol=0)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=TESTS_DIR.parent
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_docs_example_runs():
    text = (TESTS_DIR.parent / "docs" / "autogeneration.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "docs/autogeneration.md", "exec"), namespace)
    space = namespace["search_space"]
    assert len(space.search_variants_containers) == 16
    assert space(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# ------------------------------------------------------------------------ any traceable model, errors
class _BatchNormAct(nn.BatchNorm2d):
    """Like timm's BatchNormAct2d: a BatchNorm2d subclass whose forward applies batch norm through
    the functional API, then its activation child."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
        )
        return self.act(x)


class _TimmLikeBlock(nn.Module):
    """timm's InvertedResidual shape: BatchNormAct, squeeze-excitation by ``mean``, ``drop_path(x) + shortcut``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv_pw = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = _BatchNormAct(hidden)
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2 = _BatchNormAct(hidden)
        self.conv_reduce = nn.Conv2d(hidden, 4, 1)
        self.conv_expand = nn.Conv2d(4, hidden, 1)
        self.conv_pwl = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        x = x * self.conv_expand(torch.relu(self.conv_reduce(x.mean((2, 3), keepdim=True)))).sigmoid()
        x = self.bn3(self.conv_pwl(x))
        return self.drop_path(x) + shortcut


@torch.no_grad()
def test_batch_norm_subclass_and_functional_squeeze_excitation_are_pruned():
    torch.manual_seed(0)
    model = _randomise_norms(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _TimmLikeBlock(8, 32), _TimmLikeBlock(8, 32)))
    generated, _ = _generate(model, BY_WIDTH[::2])
    original, candidate = model[1], generated[1].search_variants[1]  # width 0.5
    assert (candidate.conv_pw.out_channels, candidate.bn1.num_features, candidate.conv_dw.groups) == (16, 16, 16)
    assert type(candidate.bn1) is _BatchNormAct
    assert (candidate.conv_reduce.in_channels, candidate.conv_reduce.out_channels) == (16, 2)
    assert isinstance(generated[1].search_variants[2], nn.Identity)
    masked = copy.deepcopy(original)
    kept = torch.isin(original.bn1.weight, candidate.bn1.weight)
    rows = original.conv_reduce.weight[:, kept].flatten(1)
    se_kept = (rows[:, None] == candidate.conv_reduce.weight.flatten(1)[None]).all(-1).any(1)
    for norm in (masked.bn1, masked.bn2):
        norm.weight[~kept] = 0
        norm.bias[~kept] = 0
    masked.conv_reduce.weight[~se_kept] = 0
    masked.conv_reduce.bias[~se_kept] = 0
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(candidate(x), masked(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(generated[1].search_variants[0](x), original(x))



class _UserBlock(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class _DataDependent(_UserBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # torch.fx cannot trace this
            return x + self.body(x)
        return x


class _UserNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(_UserBlock(8, 16), _DataDependent(8, 16), _UserBlock(8, 12))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


@torch.no_grad()
def test_any_traceable_block_and_untraceable_ones_listed():
    torch.manual_seed(0)
    model = _randomise_norms(_UserNet())
    generated, messages = _generate(model, BY_WIDTH[::2])
    assert isinstance(generated.blocks[0], SearchVariantsContainer) and isinstance(generated.blocks[2], SearchVariantsContainer)
    assert type(generated.blocks[1]) is _DataDependent
    assert [c.body[0].out_channels for c in generated.blocks[0].search_variants[:2]] == [16, 8]
    assert [c.body[0].out_channels for c in generated.blocks[2].search_variants[:2]] == [12, 6]
    assert "blocks.1 (_DataDependent: torch.fx cannot trace it" in messages[0]
    assert "stem (Conv2d" in messages[0] and "head (Linear" in messages[0]
    space = SearchSpaceModel(generated).eval()
    x = torch.randn(2, 3, 8, 8)
    space.sample([0, 0])
    assert torch.equal(space(x), model(x))


def test_excluded_modules():
    model = _mobilenet()
    generated, messages = _generate(model, excluded_modules=[model.features[3], model.features[0]])
    assert type(generated.features[3]) is type(model.features[3])
    assert torch.equal(generated.features[3].conv[0][0].weight, model.features[3].conv[0][0].weight)
    assert "features.3 " not in messages[0] and "features.0 " not in messages[0]
    with pytest.raises(ValueError, match="no block"):
        generate_pruned_search_variants_model(model, BY_WIDTH, excluded_modules=[type(model.features[3])])
    with pytest.raises(ValueError, match="not a submodule"):
        generate_pruned_search_variants_model(model, BY_WIDTH, excluded_modules=[nn.Conv2d(1, 1, 1)])
    with pytest.raises(TypeError, match="excluded_modules"):
        generate_pruned_search_variants_model(model, BY_WIDTH, excluded_modules=["features.3"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="width_mult=1.5"):
        TransformationParameters(width_mult=1.5)
    with pytest.raises(ValueError, match="depth_mult=0"):
        TransformationParameters(depth_mult=0)
    with pytest.raises(ValueError, match="kernel_size=4"):
        TransformationParameters(kernel_size=4)
    with pytest.raises(TypeError, match="kernel_size"):
        TransformationParameters(kernel_size=3.0)
    with pytest.raises(TypeError, match="width_mult"):
        TransformationParameters(width_mult="0.5")
    model = _UserNet()
    with pytest.raises(ValueError, match="empty"):
        generate_pruned_search_variants_model(model, ())
    with pytest.raises(TypeError, match="TransformationParameters"):
        generate_pruned_search_variants_model(model, (0.5,))
    with pytest.raises(TypeError, match="nn.Module"):
        generate_pruned_search_variants_model("model", BY_WIDTH)
    with pytest.raises(ValueError, match="no block"):
        generate_pruned_search_variants_model(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)), BY_WIDTH)
