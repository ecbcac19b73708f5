"""ENOT 2.x names the tutorials use: op registry and builders, latency helpers, data, distributed, logging."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch import nn

from enot.latency import (
    LatencyMixin,
    MacCalculatorPthflops,
    MacCalculatorThop,
    available_calculators,
    conv_mac_count,
    initialize_latency,
)
from enot.models import (
    SearchSpaceModel,
    SearchVariantsContainer,
    build_mobilenet,
    build_simple_block_model,
    register_searchable_op,
)
from enot.models.mobilenet import MobileNetBaseHead
from enot.utils.common import input_hw, is_valid_for_skip_connection

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "hard_swish": nn.Hardswish}


@register_searchable_op("CustomOp", {"k": ("kernel_size", int), "a": ("activation", lambda x: ACTIVATIONS[x])})
class CustomOp(nn.Module):
    def __init__(self, in_channels, out_channels, stride, kernel_size=3, activation=nn.ReLU):
        super().__init__()
        self.kernel_size, self.activation_class = kernel_size, activation
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2)
        self.act = activation()

    def forward(self, x):
        return self.act(self.conv(x))


# ------------------------------------------------------------------------------- op strings
def test_registered_op_strings_build_with_defaults_and_parsed_arguments():
    model = build_mobilenet(["MIB_k=3_t=6", "CustomOp_k=5", "CustomOp_a=sigmoid", "CustomOp_k=1_a=hard_swish", "MIB"],
                            blocks_out_channels=[8], blocks_count=[1], blocks_stride=[2], last_channels=16)
    ops = model[1].search_variants
    assert (ops[1].kernel_size, ops[1].activation_class) == (5, nn.ReLU)
    assert (ops[2].kernel_size, ops[2].activation_class) == (3, nn.Sigmoid)
    assert (ops[3].kernel_size, ops[3].activation_class) == (1, nn.Hardswish)  # a value may contain '_'
    assert ops[4].ops[3].kernel_size == (3, 3) and ops[4].ops[0].out_channels == 16 * 6  # MIB defaults k=3, t=6
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("op, message", [
    ("CustomOp_q=1", "unknown argument 'q=1'; CustomOp takes 'CustomOp_k=<kernel_size>_a=<activation>'"),
    ("CustomOp_a=tanh", "cannot parse a='tanh'"),
    ("CustomOp_k=3_k=5", "given twice"),
    ("NoSuchOp_k=3", "unknown search op 'NoSuchOp_k=3'; allowed formats: .*'CustomOp_k=<kernel_size>_a=<activation>'"),
])
def test_bad_op_strings_are_clear_errors(op, message):
    with pytest.raises(ValueError, match=message):
        build_mobilenet([op], blocks_out_channels=[8], blocks_count=[1], blocks_stride=[1])


def test_registration_errors():
    with pytest.raises(ValueError, match="without '_'"):
        register_searchable_op("My_Op", {})
    with pytest.raises(ValueError, match="does not accept"):
        register_searchable_op("Bad", {"x": ("nonexistent", int)})(CustomOp)
    with pytest.raises(TypeError, match="must accept"):
        register_searchable_op("Bad", {})(nn.ReLU)
    with pytest.raises(ValueError, match="already taken"):
        register_searchable_op("MIB", {})(CustomOp)
    register_searchable_op("CustomOp", {"k": ("kernel_size", int)})(CustomOp)  # re-running the cell is fine
    register_searchable_op("CustomOp", {"k": ("kernel_size", int), "a": ("activation", lambda x: ACTIVATIONS[x])})(CustomOp)


def test_is_valid_for_skip_connection_matches_the_shapes_a_convolution_produces():
    for k, p, s, cin, cout in [(3, 1, 1, 4, 4), (5, 1, 1, 4, 4), (3, 1, 2, 4, 4), (1, 0, 1, 4, 8), (5, 2, 1, 3, 3)]:
        x = torch.zeros(1, cin, 9, 9)
        same = nn.Conv2d(cin, cout, k, s, p)(x).shape == x.shape
        assert is_valid_for_skip_connection(cin, cout, k, p, s) == same
    with pytest.raises(ValueError, match="stride"):
        is_valid_for_skip_connection(4, 4, 3, 1, 0)


def test_build_simple_block_model_shapes_width_and_init():
    body = build_simple_block_model(32, ["MIB_k=3_t=3", "conv1x1-skip"], [16, 24, 320], [1, 2, 1], [1, 2, 2],
                                    width_multiplier=0.5, min_channels=16, init_weights_kn=True)
    assert len(body) == 4 and all(isinstance(b, SearchVariantsContainer) for b in body)
    assert body(torch.randn(2, 32, 16, 16)).shape == (2, 160, 4, 4)  # 16*0.5 -> min 16, 24*0.5 -> 16, 320*0.5
    torch.manual_seed(0)
    big = build_simple_block_model(64, ["MIB_k=3_t=6"], [64], [1], [1])
    weight = big[0].search_variants[0].ops[0].weight
    fan_out = weight.shape[0]
    assert weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.1)  # Kaiming normal, fan_out
    space = SearchSpaceModel(nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), body))
    assert space.layout.n_choices == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="blocks_stride has 1 entries"):
        build_simple_block_model(8, ["MIB"], [8, 8], [1, 1], [1])


def test_mobilenet_head_takes_enot_keywords():
    head = MobileNetBaseHead(bottleneck_channels=32, last_channels=64, num_classes=7)
    assert head(torch.randn(2, 32, 4, 4)).shape == (2, 7)
    assert head.conv[0].in_channels == 32 and head.conv[0].out_channels == 64


# ---------------------------------------------------------------------------------- latency
def test_conv_mac_count_equals_the_flop_counter():
    for size, k, s, cin, p, cout, g in [((15, 11), 3, 2, 4, 1, 8, 1), (16, 5, 1, 8, 2, 8, 8), (7, 1, 1, 3, 0, 5, 1)]:
        conv = nn.Conv2d(cin, cout, k, s, p, groups=g, bias=False)
        x = torch.randn(1, cin, *((size, size) if isinstance(size, int) else size))
        mmac, hw = conv_mac_count(size, k, s, cin, p, cout, g)
        assert hw == tuple(conv(x).shape[-2:])
        assert mmac == pytest.approx(MacCalculatorThop().calculate(conv, x))
    with pytest.raises(ValueError, match="groups=3"):
        conv_mac_count(8, 3, 1, 4, 1, 8, 3)


def test_mac_calculators_count_per_sample_and_leave_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    model.train()
    running = model[1].running_mean.clone()
    one = MacCalculatorThop().calculate(model, torch.randn(1, 3, 8, 8))
    assert one == pytest.approx((6 * 6 * 9 * 3 * 8 + 8 * 36 * 10) / 1e6)
    assert MacCalculatorPthflops().calculate(model, (torch.randn(5, 3, 8, 8),)) == pytest.approx(one)
    assert model.training and torch.equal(model[1].running_mean, running)
    assert "mmac" in available_calculators()


class _Stated(nn.Module, LatencyMixin):
    """A conv that states its own MACs with the tutorial-4 recipe (input_hw + conv_mac_count)."""

    def __init__(self, cin, cout, k, stride, scale=1.0):
        super().__init__()
        self.cin, self.cout, self.k, self.stride, self.scale = cin, cout, k, stride, scale
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)

    def forward(self, x):
        return self.conv(x)

    def latency_mmac(self, inputs):
        mmac, _ = conv_mac_count(input_hw(inputs), self.k, self.stride, self.cin, self.k // 2, self.cout)
        return mmac * self.scale


@pytest.mark.parametrize("latency_type", ["mmac", "mmac.pthflops", "mmac.thop"])
def test_latency_mixin_figures_replace_measurement(latency_type):
    torch.manual_seed(0)
    model = nn.Sequential(_Stated(3, 4, 3, 2), SearchVariantsContainer([_Stated(4, 4, 3, 1), _Stated(4, 4, 3, 1, 10.0),
                                                                      nn.Conv2d(4, 4, 3, 1, 1, bias=False)]))
    space = SearchSpaceModel(model)
    container = initialize_latency(latency_type, space, (torch.randn(2, 3, 12, 12),))
    stated, scaled, measured = container.operations_latencies[0]
    assert stated == pytest.approx(measured)  # the stated figure agrees with the FLOP counter...
    assert scaled == pytest.approx(10 * measured)  # ...and is the one used
    assert container.constant_latency == pytest.approx(6 * 6 * 9 * 3 * 4 / 1e6)
    assert model[0].stated_latency_types() == ["mmac"]
    assert input_hw(torch.zeros(2, 3, 5, 7)) == (5, 7)
    with pytest.raises(ValueError, match="no tensor"):
        input_hw(("a",))


def test_plot_latency_heatmap_at_enot_path(mobilenet_space):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from enot.visualization.latency import plot_latency_heatmap

    container = initialize_latency("mmac", mobilenet_space, (torch.randn(1, 1, 8, 8),))
    ax = plot_latency_heatmap(container, annotate_values=True, figsize=(4, 3))
    assert tuple(ax.figure.get_size_inches()) == (4, 3)
    assert len(ax.texts) == sum(len(row) for row in container.operations_latencies)
    assert len(plot_latency_heatmap(mobilenet_space, annotate_values=False).texts) == 0


# ------------------------------------------------------------------------------------- data
def _write_images(folder, count=6):
    from PIL import Image

    rows = ["filepath,label"]
    for i in range(count):
        pixels = (torch.arange(10 * 12 * 3) % 251).reshape(10, 12, 3).to(torch.uint8) + i
        Image.fromarray(pixels.numpy()).save(folder / f"im{i}.png")
        rows.append(f"im{i}.png,{i % 3}")
    (folder / "annotation.csv").write_text("\n".join(rows) + "\n")
    return folder / "annotation.csv"


def test_csv_dataset_and_loaders(tmp_path):
    from enot.utils.data.csv_annotation_dataset import CsvAnnotationDataset
    from enot.utils.data.dataloaders import (
        create_data_loader,
        create_data_loader_from_csv_annotation,
        get_default_train_transform,
        get_default_validation_transform,
    )

    csv_path = _write_images(tmp_path)
    dataset = CsvAnnotationDataset(csv_path, root_dir=tmp_path)
    image, label = dataset[4]
    assert image.size == (12, 10) and label == 1 and len(dataset) == 6
    train = get_default_train_transform((8, 8), mean=[0.5] * 3, std=[0.25] * 3)
    validation = get_default_validation_transform(8)
    loader = create_data_loader_from_csv_annotation(csv_path, validation, batch_size=4, root_dir=tmp_path)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 8, 8) and y.tolist() == [0, 1, 2, 0]
    again = next(iter(create_data_loader(CsvAnnotationDataset(csv_path, train, tmp_path), batch_size=6,
                                         shuffle=True, drop_last=True)))
    assert again[0].shape == (6, 3, 8, 8) and sorted(again[1].tolist()) == [0, 0, 1, 1, 2, 2]
    (tmp_path / "bad.csv").write_text("path,label\na.png,1\n")
    with pytest.raises(ValueError, match="columns"):
        CsvAnnotationDataset(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("filepath,label\na.png,cat\n")
    with pytest.raises(ValueError, match="line 2: label must be an integer"):
        CsvAnnotationDataset(tmp_path / "bad2.csv")
    with pytest.raises(ValueError, match="shuffle=True with a sampler"):
        create_data_loader(dataset, shuffle=True, sampler=torch.utils.data.SequentialSampler(dataset))


def test_transforms_without_torchvision_name_the_extra(monkeypatch):
    from enot.utils.data import dataloaders

    monkeypatch.setitem(sys.modules, "torchvision.transforms", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"enot-open-nas\[data\]"):
        dataloaders.get_default_train_transform(8)


# ------------------------------------------------------------------------- distributed, logging
def test_enot2_distributed_names_on_one_process(tmp_path):
    import enot.distributed as ed

    info = ed.init_torch(cuda_optimize_for_speed=True)
    assert (info.rank, info.world_size) == (0, 1)
    assert not ed.is_dist() and ed.is_master() and ed.is_local_master() and ed.get_world_size() == 1
    model = nn.Linear(2, 2)
    before = model.weight.detach().clone()
    assert ed.sync_model(model, reduce_parameters=False, reduce_buffers=False) is model
    assert torch.equal(model.weight, before)
    loader = [(torch.ones(2, 2), torch.zeros(2)), (torch.ones(2, 2) * 2, torch.ones(2))]
    items = list(ed.extract_data_from_queue(loader, data_parallel=True, use_tqdm=False))
    assert [i for i, *_ in items] == [0, 1] and torch.equal(items[1][1], loader[1][0])
    assert items[0][1].device == (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
                                  else torch.device("cpu"))
    assert [i for i, _ in ed.extract_data_from_queue([torch.zeros(1)] * 3)] == [0, 1, 2]


def test_prepare_log_writes_records_to_a_file_once(tmp_path):
    from enot.logging import prepare_log

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        path = prepare_log(tmp_path / "experiments" / "run1")
        prepare_log(tmp_path / "experiments" / "run1")  # again: replaces its handlers
        logging.info("epoch 1")
        assert path == tmp_path / "experiments" / "run1" / "log.txt"
        assert path.read_text().count("epoch 1") == 1
        assert prepare_log(tmp_path / "single.log") == tmp_path / "single.log"
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
