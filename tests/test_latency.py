"""Tests of enot.latency and the latency maths of enot.functional."""

from __future__ import annotations

import itertools
import json
import math
import os
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import enot.functional as ef
import enot.latency as L
from enot.models import SearchSpaceModel, SearchVariantsContainer, build_mobilenet

# ----------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202
    # Small convolutions run faster on one thread, and a shared machine does not oversubscribe.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def conv_macs(h_out: int, w_out: int, c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    return h_out * w_out * c_out * (c_in // groups) * k * k


class ConvSpace(nn.Module):
    """conv (constant) -> container A (plain, grouped, depthwise) -> container B (strided) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = SearchVariantsContainer([
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Conv2d(8, 8, 3, padding=1, groups=4),
            nn.Conv2d(8, 8, 5, padding=2, groups=8),
        ])
        self.b = SearchVariantsContainer([nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Conv2d(8, 16, 1, stride=2)])
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(torch.relu(self.a(self.stem(x)))).flatten(1))


CONV_SPACE_MACS = {
    "constant": conv_macs(8, 8, 3, 8, 3) + 16 * 4 * 4 * 10,
    "a": [conv_macs(8, 8, 8, 8, 3), conv_macs(8, 8, 8, 8, 3, groups=4), conv_macs(8, 8, 8, 8, 5, groups=8)],
    "b": [conv_macs(4, 4, 8, 16, 3), conv_macs(4, 4, 8, 16, 1)],
}


def small_mobilenet(ops=("MIB_k=3_t=6", "MIB_k=5_t=3", "conv1x1-skip")) -> SearchSpaceModel:
    torch.manual_seed(0)
    model = build_mobilenet(
        list(ops), num_classes=10, blocks_out_channels=[16, 24], blocks_count=[1, 2], blocks_stride=[2, 2],
        last_channels=64,
    )
    return SearchSpaceModel(model)


def mobilenet_macs(architecture: list[int], size: int = 32) -> int:
    """Closed-form MACs of the small_mobilenet path (per sample, input ``3 x size x size``)."""
    ops = [("mib", 3, 6), ("mib", 5, 3), ("skip",)]
    h = size // 2
    total = conv_macs(h, h, 3, 32, 3) + conv_macs(h, h, 32, 32, 3, groups=32) + conv_macs(h, h, 32, 16, 1)
    channels = 16
    for (width, stride), index in zip([(16, 2), (24, 2), (24, 1)], architecture):
        out = h // stride
        op = ops[index]
        if op[0] == "mib":
            hidden = channels * op[2]
            total += conv_macs(h, h, channels, hidden, 1) + conv_macs(out, out, hidden, hidden, op[1], groups=hidden)
            total += conv_macs(out, out, hidden, width, 1)
        elif stride != 1 or channels != width:
            total += conv_macs(out, out, channels, width, 1)
        channels, h = width, out
    return total + conv_macs(h, h, channels, 64, 1) + 64 * 10


def counted_mmac(module: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(x)
    return counter.get_total_flops() / 2 / 1e6 / x.shape[0]


def brute_force_expectation(logits: list[torch.Tensor], container: L.SearchSpaceLatencyContainer) -> float:
    probs = [torch.softmax(l.detach().double(), 0) for l in logits]
    ops = container.operations_latencies
    total = 0.0
    for arch in itertools.product(*[range(len(o)) for o in ops]):
        p = math.prod(float(probs[c][k]) for c, k in enumerate(arch))
        total += p * (container.constant_latency + sum(ops[c][k] for c, k in enumerate(arch)))
    return total


# ------------------------------------------------------------------------------------ MAC counting


@pytest.mark.parametrize("batch", [1, 5])
def test_mmac_of_conv_and_linear_match_closed_form(batch: int) -> None:
    space = SearchSpaceModel(ConvSpace())
    container = L.initialize_latency("mmac", space, (torch.randn(batch, 3, 8, 8),))
    assert container.latency_type == "mmac"
    assert container.metadata["batch_size"] == batch
    assert container.constant_latency == pytest.approx(CONV_SPACE_MACS["constant"] / 1e6, rel=1e-12)
    expected = [[m / 1e6 for m in CONV_SPACE_MACS[k]] for k in ("a", "b")]
    assert container.operations_latencies == [pytest.approx(e, rel=1e-12) for e in expected]


def test_mmac_does_not_depend_on_batch_size_and_sums_to_extracted_network() -> None:
    space = small_mobilenet()
    one = L.initialize_latency("mmac", space, torch.randn(1, 3, 32, 32))
    three = L.initialize_latency("mmac", space, (torch.randn(3, 3, 32, 32),))
    for a, b in zip(one.operations_latencies, three.operations_latencies):
        assert a == pytest.approx(b, rel=1e-12)
    assert one.constant_latency == pytest.approx(three.constant_latency, rel=1e-12)
    x = torch.randn(2, 3, 32, 32)
    for architecture in itertools.product(range(3), repeat=3):
        architecture = list(architecture)
        table_value = float(ef.architecture_latency(architecture, three.table()))
        closed_form = mobilenet_macs(architecture) / 1e6
        assert table_value == pytest.approx(closed_form, rel=1e-12), architecture
        if architecture in ([0, 0, 0], [1, 2, 0], [2, 2, 2], [0, 1, 2]):
            assert counted_mmac(space.get_network_by_indexes(architecture), x) == pytest.approx(table_value, rel=1e-12)


def test_initialize_restores_mode_architecture_and_buffers() -> None:
    space = small_mobilenet()
    space.train()
    space.sample([2, 1, 0])
    buffers = {k: v.clone() for k, v in space.state_dict().items()}
    L.initialize_latency("mmac", space, torch.randn(4, 3, 32, 32))
    assert all(m.training for m in space.modules())
    assert space.forward_architecture == [2, 1, 0]
    for k, v in space.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    assert not any("forward" in vars(m) for m in space.modules())


def test_mmac_aliases_keyword_inputs_and_batch_size_option() -> None:
    class Keyword(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = SearchVariantsContainer([nn.Linear(4, 4), nn.Linear(4, 2, bias=False)])
            self.out = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
            y = self.c(x * scale)
            return self.out(y) if y.shape[-1] == 4 else y

    space = SearchSpaceModel(Keyword())
    container = L.initialize_latency("mmac.thop", space, (), {"x": torch.randn(6, 4), "scale": 2.0})
    assert container.latency_type == "mmac" and space.latency_type == "mmac"
    assert container.operations_latencies == [pytest.approx([16e-6, 8e-6])]
    assert container.constant_latency == pytest.approx(12e-6)
    halved = L.initialize_latency("mmac", space, (torch.randn(6, 4),), batch_size=12)
    assert halved.constant_latency == pytest.approx(6e-6)


def test_module_override_replaces_calculator() -> None:
    class Fixed(nn.Module):
        def __init__(self, figure: float) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.figure = figure
            self.seen = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

        def latency_mmac(self, inputs: tuple) -> float:
            self.seen.append(tuple(inputs[0].shape))
            return self.figure

    fixed_stem, fixed_candidate = Fixed(7.0), Fixed(3.0)
    model = nn.Sequential(
        fixed_stem,
        SearchVariantsContainer([fixed_candidate, nn.Sequential(nn.Conv2d(4, 4, 1), Fixed(1.5))]),
        nn.Conv2d(4, 4, 1),
    )
    space = SearchSpaceModel(model)
    container = L.initialize_latency("mmac", space, torch.randn(2, 4, 5, 5))
    plain_1x1 = conv_macs(5, 5, 4, 4, 1) / 1e6
    assert container.constant_latency == pytest.approx(7.0 + plain_1x1)
    assert container.operations_latencies == [pytest.approx([3.0, plain_1x1 + 1.5])]
    assert fixed_candidate.seen == [(2, 4, 5, 5)]

    class Bad(nn.Conv2d):
        def latency_mmac(self, inputs: tuple) -> float:
            return -1.0

    with pytest.raises(ValueError, match="latency_mmac returned -1.0"):
        L.initialize_latency("mmac", SearchSpaceModel(nn.Sequential(Bad(1, 1, 1), SearchVariantsContainer([nn.ReLU()]))),
                             torch.randn(1, 1, 2, 2))


def test_container_called_twice_counts_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = SearchVariantsContainer([nn.Linear(3, 3), nn.Identity()])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.c(x))

    container = L.initialize_latency("mmac", SearchSpaceModel(Twice()), torch.randn(2, 3))
    assert container.operations_latencies == [pytest.approx([18e-6, 0.0])]
    assert container.constant_latency == 0.0


def test_initialize_errors() -> None:
    space = SearchSpaceModel(ConvSpace())
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown latency type 'flops'.*'mmac'.*'time'"):
        L.initialize_latency("flops", space, x)
    with pytest.raises(ValueError, match="unsupported keyword arguments \\['repeat'\\]"):
        L.initialize_latency("time", space, x, repeat=3)
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        L.initialize_latency("time", space, x, repeats=0)
    with pytest.raises(TypeError, match="expects a SearchSpaceModel"):
        L.initialize_latency("mmac", ConvSpace(), x)
    with pytest.raises(ValueError, match="cannot infer the batch size"):
        L.initialize_latency("mmac", space, (), {})

    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = SearchVariantsContainer([nn.Identity()])
            self.unused = SearchVariantsContainer([nn.Identity()])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="'original_model.unused' was not reached"):
        L.initialize_latency("mmac", SearchSpaceModel(Skips()), x)
    nested = SearchVariantsContainer([SearchVariantsContainer([nn.Identity(), nn.ReLU()]), nn.Identity()])
    with pytest.raises(ValueError, match="is nested in candidate 0 of container 'original_model.0'; latency tables"):
        L.initialize_latency("mmac", SearchSpaceModel(nn.Sequential(nested)), x)


def test_available_and_registered_calculators() -> None:
    assert L.available_calculators() == ["mmac", "time"]

    class Params:
        unit = "parameters"

        def measure(self, prepare, *, batch_size, device) -> float:  # noqa: ANN001
            prepare()()
            return 1.0

        def metadata(self) -> dict:
            return {"unit": self.unit}

    with pytest.raises(ValueError, match="already registered"):
        L.register_calculator("mmac", Params)
    with pytest.raises(ValueError, match="must be an identifier"):
        L.register_calculator("a.b", Params)
    from enot.latency import _calculators

    L.register_calculator("unit_test_ones", Params)
    try:
        assert "unit_test_ones" in L.available_calculators()
        container = L.initialize_latency("unit_test_ones", SearchSpaceModel(ConvSpace()), torch.randn(1, 3, 8, 8))
        assert container.constant_latency == 1.0 and container.operations_latencies == [[1.0] * 3, [1.0] * 2]
    finally:
        del _calculators._REGISTRY["unit_test_ones"]


# ----------------------------------------------------------------------------- measured time


def test_time_orders_ops_and_repeats_within_spread() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = SearchVariantsContainer([nn.Conv2d(64, 64, 7, padding=3, bias=False), nn.Conv2d(64, 64, 1, bias=False)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(x)

    space = SearchSpaceModel(Two())
    x = torch.randn(2, 64, 24, 24)
    spreads = []
    for _ in range(3):  # timing on a shared machine: the spread claim gets three attempts
        runs = [L.initialize_latency("time", space, x, warmup=2, repeats=15, num_threads=1) for _ in range(5)]
        assert runs[0].metadata["num_threads"] == 1 and runs[0].metadata["batch_size"] == 2
        assert runs[0].metadata["unit"] == "ms per batch" and runs[0].metadata["repeats"] == 15
        big = sorted(r.operations_latencies[0][0] for r in runs)
        small = sorted(r.operations_latencies[0][1] for r in runs)
        # 49x the MACs: the 7x7 conv is slower in every run, and clearly so in the median run.
        assert all(r.operations_latencies[0][0] > r.operations_latencies[0][1] for r in runs), (big, small)
        assert big[2] > 4 * small[2], (big, small)
        assert all(r.constant_latency < small[-1] for r in runs)
        # Documented spread (docs/latency.md): the middle three of five runs agree within a factor 1.5.
        spreads.append(big[3] / big[1])
        if spreads[-1] < 1.5:
            break
    assert min(spreads) < 1.5, spreads


# ------------------------------------------------------------------------------ search space members


def test_members_before_and_after_latency() -> None:
    space = small_mobilenet()
    assert space.latency_type is None
    with pytest.raises(RuntimeError, match="initialize_latency"):
        space.constant_latency  # noqa: B018
    with pytest.raises(RuntimeError, match="initialize_latency"):
        space.forward_latency  # noqa: B018
    with pytest.raises(RuntimeError, match="apply_latency_container"):
        space.get_latency_container()
    container = L.SearchSpaceLatencyContainer("mmac", 1.5, [[1.0, 2.0, 3.0], [0.0, 0.5, 4.0], [1.0, 1.0, 1.0]])
    space.apply_latency_container(container)
    assert space.get_latency_container() is container
    assert space.latency_type == "mmac" and space.constant_latency == 1.5
    space.sample([2, 1, 0])
    assert float(space.forward_latency) == pytest.approx(1.5 + 3.0 + 0.5 + 1.0)
    assert L.current_latency(space) == pytest.approx(6.0)
    with torch.no_grad():
        space.architecture_logits[0].copy_(torch.tensor([0.0, 5.0, 0.0]))
    assert space.best_architecture_int == [1, 0, 0]
    assert L.best_arch_latency(space) == pytest.approx(1.5 + 2.0 + 0.0 + 1.0)
    assert L.min_latency(space) == 3.5 and L.max_latency(space) == 9.5
    assert L.mean_latency(space) == pytest.approx(1.5 + 2.0 + 1.5 + 1.0)
    L.reset_latency(space)
    assert space.latency_type is None


def test_apply_rejects_mismatching_containers() -> None:
    space = small_mobilenet()
    with pytest.raises(ValueError, match="2 containers; the search space has 3"):
        space.apply_latency_container(L.SearchSpaceLatencyContainer("mmac", 0.0, [[1, 2, 3], [1, 2, 3]]))
    with pytest.raises(ValueError, match="2 candidates for container 1; the search space's 'original_model.2' has 3"):
        space.apply_latency_container(L.SearchSpaceLatencyContainer("mmac", 0.0, [[1, 2, 3], [1, 2], [1, 2, 3]]))
    with pytest.raises(TypeError, match="expects a SearchSpaceLatencyContainer"):
        space.apply_latency_container([[1, 2, 3]] * 3)
    assert space.latency_type is None


def test_loss_latency_expectation_matches_brute_force_and_gradient() -> None:
    space = small_mobilenet().double()
    generator = torch.Generator().manual_seed(3)
    container = L.SearchSpaceLatencyContainer(
        "time", 0.25, [torch.rand(3, generator=generator).tolist() for _ in range(3)]
    )
    space.apply_latency_container(container)
    with torch.no_grad():
        for logits in space.architecture_logits:
            logits.copy_(torch.randn(3, generator=generator, dtype=torch.float64))
    loss = space.loss_latency_expectation
    assert loss.dtype == torch.float64 and loss.ndim == 0
    assert float(loss.detach()) == pytest.approx(brute_force_expectation(list(space.architecture_logits), container), rel=1e-12)
    loss.backward()
    for logits, ops in zip(space.architecture_logits, container.operations_latencies):
        p = torch.softmax(logits.detach(), 0)
        t = torch.tensor(ops, dtype=torch.float64)
        torch.testing.assert_close(logits.grad, p * (t - (p * t).sum()), rtol=1e-12, atol=1e-14)
    table = container.table()
    inputs = tuple(torch.randn(3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda *logits: ef.expected_latency(logits, table), inputs)
    assert torch.autograd.gradgradcheck(lambda *logits: ef.expected_latency(logits, table), inputs)


def test_forward_latency_is_float64_and_expectation_follows_logits_dtype() -> None:
    space = small_mobilenet()
    L.initialize_latency("mmac", space, torch.randn(1, 3, 32, 32))
    # float64 like every bound check, so a feasible architecture never reads as above its bound
    assert space.forward_latency.dtype == torch.float64
    assert float(space.forward_latency) == L.current_latency(space)
    assert space.loss_latency_expectation.dtype == torch.float32
    assert space.loss_latency_expectation.requires_grad
    assert space.loss_latency_expectation.item() == pytest.approx(L.mean_latency(space), rel=1e-6)  # zero logits


# ------------------------------------------------------------------------------ functional core


def test_functional_latency_is_pure_and_consistent() -> None:
    table = ef.latency_table(2.0, [[3.0, 1.0, 2.0], [0.5, 4.0]])
    before = [o.clone() for o in table.operations]
    logits = (torch.zeros(3), torch.tensor([0.0, 1.0]))
    logits_before = [l.clone() for l in logits]
    assert float(ef.architecture_latency([1, 0], table)) == 3.5
    assert float(ef.architecture_latency(torch.tensor([0, 1]), table)) == 9.0
    assert ef.min_latency_architecture(table) == [1, 0] and ef.max_latency_architecture(table) == [0, 1]
    assert float(ef.min_latency(table)) == 3.5 and float(ef.max_latency(table)) == 9.0
    all_values = ef.enumerate_latencies(table)
    assert all_values.tolist() == [5.5, 9.0, 3.5, 7.0, 4.5, 8.0]
    assert float(ef.mean_latency(table)) == pytest.approx(float(all_values.mean()))
    assert float(ef.median_latency(table)) == pytest.approx(6.25)
    ef.expected_latency(logits, table)
    for a, b in zip(before + logits_before, list(table.operations) + list(logits)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"architecture \[0\] has 1 entries; the search space has 2 containers"):
        ef.architecture_latency([0], table)
    with pytest.raises(ValueError, match="logits of container 1 have shape \\(3,\\)"):
        ef.expected_latency((torch.zeros(3), torch.zeros(3)), table)
    with pytest.raises(ValueError, match="container 0, candidate 1 is nan"):
        ef.latency_table(0.0, [[1.0, float("nan")]])
    with pytest.raises(ValueError, match="bins must be a positive int"):
        ef.latency_distribution(table, bins=0)
    with pytest.raises(ValueError, match="more than max_architectures=4"):
        ef.enumerate_latencies(table, max_architectures=4)


def test_expected_latency_under_compile_does_not_recompile() -> None:
    table = ef.latency_table(1.0, [[1.0, 2.0], [3.0, 4.0, 5.0]], dtype=torch.float32)
    graphs = []

    def backend(graph_module, example_inputs):  # noqa: ANN001, ANN202
        graphs.append(graph_module)
        return graph_module.forward

    compiled = torch.compile(ef.expected_latency, backend=backend, fullgraph=True)
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        logits = (torch.randn(2, generator=generator), torch.randn(3, generator=generator))
        torch.testing.assert_close(compiled(logits, table), ef.expected_latency(logits, table))
    assert len(graphs) == 1


def test_grid_median_is_within_documented_bound() -> None:
    generator = torch.Generator().manual_seed(0)
    ops = [torch.rand(int(n), generator=generator).tolist() for n in torch.randint(2, 6, (9,), generator=generator)]
    table = ef.latency_table(0.3, ops)
    exact = float(ef.median_latency(table))
    for bins in (10, 100, 10_000):
        dist = ef.latency_distribution(table, bins=bins)
        span = float(ef.max_latency(table) - ef.min_latency(table))
        assert dist.error_bound <= len(ops) * span / (2 * bins) + 1e-12
        assert int(dist.counts.sum()) == math.prod(len(o) for o in ops)
        approx = float(ef.median_latency(table, max_architectures=0, bins=bins))
        assert abs(approx - exact) <= dist.error_bound + 1e-12, (bins, approx, exact)
    tiny = ef.latency_table(0.0, [[0.0, 5e-324], [0.0, 1e-320]])  # the grid step underflows to 0
    assert float(ef.median_latency(tiny, max_architectures=0, bins=5000)) == pytest.approx(5e-321, abs=1e-320)
    huge = ef.latency_table(0.0, [[0.0, 1.0, 3.0]] * 40)  # 3**40 > 2**62: probabilities, not counts
    dist = ef.latency_distribution(huge, bins=400)
    assert dist.counts.dtype == torch.float64 and float(dist.counts.sum()) == pytest.approx(1.0)
    assert L.median_latency(L.SearchSpaceLatencyContainer("mmac", 0.0, [[0.0, 1.0, 3.0]] * 40)) == pytest.approx(
        40 * 4 / 3, abs=3.0
    )


# ------------------------------------------------------------------------------ container and files


def test_container_validation_and_str() -> None:
    container = L.SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0], [3.0]], metadata={"batch_size": 2})
    text = str(container)
    assert "latency_type='mmac'" in text and "container 0: 1  2" in text and "constant: 1" in text
    assert "min 5, mean 5.5, max 6" in text and "batch_size=2" in text
    assert eval(repr(container), {"SearchSpaceLatencyContainer": L.SearchSpaceLatencyContainer}) == L.SearchSpaceLatencyContainer(
        "mmac", 1.0, [[1.0, 2.0], [3.0]], metadata={"batch_size": 2}
    )
    with pytest.raises(ValueError, match=r"operations_latencies\[1\]\[0\] is -3.0"):
        L.SearchSpaceLatencyContainer("mmac", 1.0, [[1.0], [-3.0]])
    with pytest.raises(ValueError, match="constant_latency is inf"):
        L.SearchSpaceLatencyContainer("mmac", math.inf, [[1.0]])
    with pytest.raises(ValueError, match=r"operations_latencies\[0\] is empty"):
        L.SearchSpaceLatencyContainer("mmac", 1.0, [[]])
    with pytest.raises(TypeError, match="latency_type must be a non-empty string"):
        L.SearchSpaceLatencyContainer("", 1.0, [[1.0]])
    with pytest.raises(TypeError, match=r"operations_latencies\[0\]\[0\] is 'a'"):
        L.SearchSpaceLatencyContainer("mmac", 1.0, [["a"]])


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # noqa: ANN001
    space = small_mobilenet()
    container = L.initialize_latency("mmac", space, torch.randn(2, 3, 32, 32))
    odd = L.SearchSpaceLatencyContainer("time", 0.1 + 0.2, [[1 / 3, 2 / 7, 1e-300], [math.pi], [5e-324, 1e300]])
    for original in (container, odd):
        path = tmp_path / f"{original.latency_type}.json"
        original.save_to_file(path)
        loaded = L.SearchSpaceLatencyContainer.load_from_file(path)
        assert loaded == original and loaded is not original
        assert loaded.operations_latencies == original.operations_latencies
        assert loaded.metadata == original.metadata
        data = json.loads(path.read_text())
        assert data["format"] == "enot.latency" and data["version"] == 1
    instance = L.SearchSpaceLatencyContainer("x", 0.0, [[0.0]])
    assert instance.load_from_file(tmp_path / "time.json", latency_type="time") is instance
    assert instance == odd
    assert L.SearchSpaceLatencyContainer.load_from_file(str(tmp_path / "mmac.json"), latency_type="mmac") == container
    assert sorted(os.listdir(tmp_path)) == ["mmac.json", "time.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "no \"format\""),
        ('{"format": "enot.latency", "version": 99}', "version 99; this enot reads version 1"),
        ('{"format": "enot.latency", "version": 1, "latency_type": "mmac"}', "lacks the fields"),
        ('{"format": "enot.latency", "version": 1, "latency_type": "mmac", "constant_latency": 1,'
         ' "operations_latencies": [[1, -2]]}', r"operations_latencies\[0\]\[1\] is -2.0"),
        ('{"format": "enot.latency", "version": 1, "latency_type": "mmac", "constant_latency": NaN,'
         ' "operations_latencies": [[1]]}', "constant_latency is nan"),
        ('{"format": "enot.latency", "version": 1, "latency_type": "mmac", "constant_latency": 1,'
         ' "operations_latencies": [[Infinity]]}', r"operations_latencies\[0\]\[0\] is inf"),
        ('{"format": "enot.latency", "version": 1, "latency_type": "mmac", "constant_latency": 1,'
         ' "operations_latencies": [[1]]}', "holds latency type 'mmac', not the 'time' asked for"),
    ],
)
def test_load_rejects_bad_files(tmp_path, content: str, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        L.SearchSpaceLatencyContainer.load_from_file(path, latency_type="time" if "asked" in message else None)


def test_loaded_file_for_another_space_is_rejected_on_apply(tmp_path) -> None:  # noqa: ANN001
    L.SearchSpaceLatencyContainer("mmac", 0.0, [[1.0, 2.0]] * 3).save_to_file(tmp_path / "l.json")
    loaded = L.SearchSpaceLatencyContainer.load_from_file(tmp_path / "l.json")
    with pytest.raises(ValueError, match="2 candidates for container 0"):
        small_mobilenet().apply_latency_container(loaded)


@pytest.mark.parametrize("failure", ["fsync", "replace", "interrupt"])
def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch, failure: str) -> None:  # noqa: ANN001
    path = tmp_path / "latency.json"
    old = L.SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0]])
    old.save_to_file(path)
    before = path.read_bytes()
    new = L.SearchSpaceLatencyContainer("mmac", 9.0, [[9.0, 9.0]])
    error = KeyboardInterrupt if failure == "interrupt" else OSError

    def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise error("simulated crash")

    target = {"fsync": "fsync", "replace": "replace", "interrupt": "fsync"}[failure]
    monkeypatch.setattr(os, target, fail)
    with pytest.raises(error):
        new.save_to_file(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["latency.json"]
    assert L.SearchSpaceLatencyContainer.load_from_file(path) == old


# ------------------------------------------------------------------------------ plot


def test_plot_latency_heatmap(monkeypatch) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    container = L.SearchSpaceLatencyContainer("mmac", 1.0, [[1.0, 2.0, 3.0], [0.5], [2.0, 4.0]])
    ax = L.plot_latency_heatmap(container, candidate_names=["a", "b", "c"])
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3", "0.5", "2", "4"]
    assert "mmac" in ax.get_title() and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="candidate_names has 2 names"):
        L.plot_latency_heatmap(container, candidate_names=["a", "b"])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="enot-open-nas\\[plot\\]"):
        L.plot_latency_heatmap(container)


def test_public_names() -> None:
    assert L.__all__ == sorted(L.__all__)
    for name in L.__all__:
        assert getattr(L, name) is not None
    for name in ("LatencyTable", "architecture_latency", "expected_latency", "min_latency", "median_latency"):
        assert name in ef.__all__
