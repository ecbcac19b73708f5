"""ENOT 2.x's public tutorials (ENOT_Tutorials v2.7.0), one test each: the same sequence of ``enot`` calls
on tiny data (scikit-learn digits or generated tensors, one step per phase), so that a user who follows
a tutorial meets no missing name or keyword.  Our own code, written from reading the notebooks.

Tutorials 2 and 8 (search-space autogeneration) and the autogeneration part of tutorial 6 are in
``test_enot_tutorials_autogeneration.py``.  Tutorial 11 (quantization for enot-lite) is out of scope.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _tutorial_loops import assert_plain_network, digit_batches, pretrain_loop, search_loop, train_loop
from torch import nn

pytest.importorskip("sklearn", reason="the tutorials' tests use scikit-learn's digits")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest on a shared machine
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _conv_bn_relu(in_channels, out_channels, stride=1, kernel_size=3):
    from torchvision.ops.misc import Conv2dNormActivation  # torchvision's successor of ConvBNReLU

    return Conv2dNormActivation(in_channels, out_channels, kernel_size, stride, activation_layer=nn.ReLU6)


# ---------------------------------------------------------------------- 3. custom model
def test_tutorial_3_custom_model():
    from enot.models import SearchSpaceModel
    from enot.models.mobilenet import MobileNetBaseHead, MobileNetBaseStem
    from enot.models.operations import (
        SearchableFuseableSkipConv,
        SearchableMobileInvertedBottleneck,
        SearchVariantsContainer,
    )
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer

    def variants(cin, cout, stride, skip):
        ops = [SearchableMobileInvertedBottleneck(in_channels=cin, out_channels=cout, kernel_size=3, stride=stride,
                                                  expand_ratio=6),
               SearchableMobileInvertedBottleneck(in_channels=cin, out_channels=cout, kernel_size=5, stride=stride,
                                                  expand_ratio=3)]
        ops.append(SearchableFuseableSkipConv(in_channels=cin, out_channels=cout, stride=stride) if skip else
                   SearchableMobileInvertedBottleneck(in_channels=cin, out_channels=cout, kernel_size=7,
                                                      stride=stride, expand_ratio=3))
        return SearchVariantsContainer(ops)

    class MyModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = MobileNetBaseStem(in_channels=3)
            self.body = nn.ModuleList([
                variants(16, 16, 2, skip=False),
                SearchableMobileInvertedBottleneck(in_channels=16, out_channels=24, kernel_size=3, stride=1,
                                                   expand_ratio=6),  # a fixed block
                variants(24, 24, 1, skip=True),
            ])
            self.head = MobileNetBaseHead(bottleneck_channels=24, last_channels=64, num_classes=10)

        def forward(self, x):
            x = self.stem(x)
            for block in self.body:
                x = block(x)
            return self.head(x)

    search_space = SearchSpaceModel(MyModel())
    loader = digit_batches()
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)
    enot_optimizer = EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=len(loader), eta_min=1e-8)
    pretrain_loop(search_space, enot_optimizer, loader, scheduler)
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    enot_optimizer = EnotSearchOptimizer(search_space=search_space, optimizer=optimizer)
    search_loop(search_space, enot_optimizer, loader, latency_loss_weight=1e-3, latency_type="mmac")
    assert search_space.latency_type == "mmac"
    best_model = search_space.get_network_with_best_arch()
    assert_plain_network(best_model)
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3, weight_decay=1e-4), loader)


# ------------------------------------------------------------- 4. using latency optimization
def test_tutorial_4_latency_optimization(tmp_path):
    from enot.latency import LatencyMixin, best_arch_latency, conv_mac_count, initialize_latency
    from enot.models import SearchSpaceModel
    from enot.models.operations import SearchableMobileInvertedBottleneck, SearchVariantsContainer
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer
    from enot.utils.common import input_hw

    class MyOperation(nn.Module, LatencyMixin):
        def __init__(self, in_channels, out_channels, stride, kernel_size=3):
            super().__init__()
            self.cin, self.cout, self.stride, self.k, self.padding = in_channels, out_channels, stride, kernel_size, \
                (kernel_size - 1) // 2
            self.skip = in_channels == out_channels and stride == 1
            self.operation = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, self.padding),
                                           nn.ReLU(), nn.BatchNorm2d(out_channels))

        def forward(self, x):
            out = self.operation(x)
            return out + x if self.skip else out

        def latency_mmac(self, inputs):
            mmac, _ = conv_mac_count(input_hw(inputs), self.k, self.stride, self.cin, self.padding, self.cout)
            return mmac

    class MyStem(nn.Sequential, LatencyMixin):
        def __init__(self, in_channels, out_channels, stride):
            self.cin, self.cout, self.stride = in_channels, out_channels, stride
            super().__init__(*_conv_bn_relu(in_channels, out_channels, stride))

        def latency_mmac(self, inputs):
            return conv_mac_count(spatial_size=input_hw(inputs), kernel_size=3, stride=self.stride,
                                  in_channels=self.cin, padding=1, out_channels=self.cout, groups=1)[0]

    class MyHead(nn.Sequential, LatencyMixin):
        def __init__(self, in_channels, hidden_channels, num_classes):
            self.cin, self.hidden, self.classes = in_channels, hidden_channels, num_classes
            super().__init__(_conv_bn_relu(in_channels, hidden_channels, kernel_size=1), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(hidden_channels, num_classes))

        def latency_mmac(self, inputs):
            mmac, (h, w) = conv_mac_count(input_hw(inputs), 1, 1, self.cin, 0, self.hidden)
            return mmac + self.hidden * self.classes / 1e6

    def variants(cin, cout, stride):
        return SearchVariantsContainer([
            SearchableMobileInvertedBottleneck(in_channels=cin, out_channels=cout, kernel_size=3, stride=stride,
                                               expand_ratio=6),
            SearchableMobileInvertedBottleneck(in_channels=cin, out_channels=cout, kernel_size=5, stride=stride,
                                               expand_ratio=6),
            MyOperation(in_channels=cin, out_channels=cout, kernel_size=7, stride=stride),
        ])

    class MyModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = MyStem(in_channels=3, out_channels=8, stride=2)
            self.body = nn.ModuleList([variants(8, 16, 2), variants(16, 16, 1)])
            self.head = MyHead(in_channels=16, hidden_channels=32, num_classes=10)

        def forward(self, x):
            x = self.stem(x)
            for block in self.body:
                x = block(x)
            return self.head(x)

    search_space = SearchSpaceModel(MyModel())
    loader = digit_batches()
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9)
    pretrain_loop(search_space, EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer), loader)

    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    enot_optimizer = EnotSearchOptimizer(search_space=search_space, optimizer=optimizer)
    torch.save({"model": search_space.state_dict()}, tmp_path / "search_space_backup.pth")
    search_loop(search_space, enot_optimizer, loader, latency_loss_weight=0, latency_type=None)
    search_space.sample_best_arch()
    search_space.eval()
    sample_batch, _ = loader[0]
    container = initialize_latency("mmac", search_space, (sample_batch,))
    latency_0 = best_arch_latency(search_space)
    # The stated figures are used: stem and head are exactly their formulas (the stem sees 16x16).
    assert container.constant_latency == pytest.approx(8 * 8 * 9 * 3 * 8 / 1e6 + 4 * 4 * 16 * 32 / 1e6 + 320 / 1e6)
    assert container.operations_latencies[0][2] == pytest.approx(conv_mac_count(8, 7, 2, 8, 3, 16)[0])

    search_space.load_state_dict(torch.load(tmp_path / "search_space_backup.pth")["model"])
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    enot_optimizer = EnotSearchOptimizer(search_space=search_space, optimizer=optimizer)
    search_loop(search_space, enot_optimizer, loader, latency_loss_weight=2e-3, latency_type="mmac")
    search_space.sample_best_arch()
    search_space.eval()
    initialize_latency("mmac", search_space, (sample_batch,))
    assert best_arch_latency(search_space) > 0 and latency_0 > 0
    best_model = search_space.get_network_with_best_arch()
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3), loader)


# ------------------------------------------------------------------- 5. latency calculation
def test_tutorial_5_latency_calculation(capsys):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from enot.latency import (
        MacCalculatorPthflops,
        MacCalculatorThop,
        SearchSpaceLatencyContainer,
        current_latency,
        initialize_latency,
        max_latency,
        mean_latency,
        median_latency,
        min_latency,
        reset_latency,
    )
    from enot.models import SearchSpaceModel
    from enot.models.mobilenet import build_mobilenet
    from enot.visualization.latency import plot_latency_heatmap

    model = build_mobilenet(search_ops=["MIB_k=3_t=6", "MIB_k=5_t=6", "MIB_k=7_t=6"], num_classes=10,
                            blocks_out_channels=[8, 8, 16, 16, 24, 24], blocks_count=[2, 2, 2, 1, 2, 1],
                            blocks_stride=[2, 2, 2, 1, 2, 1])
    search_space = SearchSpaceModel(model).cpu()
    inputs = torch.ones(1, 3, 34, 32)
    initialize_latency("mmac", search_space, (inputs,))
    container = initialize_latency("mmac.thop", search_space, (inputs,))
    assert min_latency(container) <= median_latency(container) <= max_latency(container)
    assert min_latency(container) <= mean_latency(container) <= max_latency(container)
    plot_latency_heatmap(container, annotate_values=True, figsize=(8, 8))
    print(container)
    assert "mmac" in capsys.readouterr().out
    latency = current_latency(search_space)
    reset_latency(search_space)
    assert search_space.latency_type is None
    # The whole model's MACs equal the container's total for the selected architecture.
    total = MacCalculatorThop().calculate(model, inputs)
    assert total == pytest.approx(latency, rel=1e-6)
    assert MacCalculatorPthflops().calculate(model, inputs) == pytest.approx(total)
    operations = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3], [4, 5, 6],
                           [7, 8, 9], [1, 2, 3]])
    container = SearchSpaceLatencyContainer(latency_type="mmac", constant_latency=10,
                                            operations_latencies=operations.tolist())
    search_space.apply_latency_container(container)
    plot_latency_heatmap(search_space.get_latency_container(), figsize=(8, 8))
    assert current_latency(search_space) == 10 + sum(row[0] for row in operations)


# ------------------------------------------------- 6. search with the specified latency (the search)
def test_tutorial_6_search_with_the_specified_latency():
    from enot.latency import current_latency, initialize_latency, max_latency, mean_latency, min_latency
    from enot.models import SearchSpaceModel
    from enot.models.mobilenet import build_mobilenet
    from enot.optimize import EnotFixedLatencySearchOptimizer

    # The tutorial generates this space from torchvision's MobileNetV2 (see the autogeneration tests).
    model = build_mobilenet(["MIB_k=3_t=6", "MIB_k=3_t=3", "conv1x1-skip"], blocks_out_channels=[8, 16],
                            blocks_count=[2, 2], blocks_stride=[2, 2], last_channels=32)
    search_space = SearchSpaceModel(model)
    search_space.load_state_dict(SearchSpaceModel(model).state_dict())  # the tutorial loads a checkpoint
    sample_inputs = torch.zeros((1, 3, 16, 16))
    container = initialize_latency("mmac.thop", search_space, (sample_inputs,))
    low, high = min_latency(container), max_latency(container)
    assert low < mean_latency(container) < high
    max_latency_value = (low + high) / 2
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.02)
    enot_optimizer = EnotFixedLatencySearchOptimizer(search_space, optimizer, max_latency_value=max_latency_value)
    loader = digit_batches()
    for _ in range(2):  # epochs
        search_space.train()
        for inputs, labels in loader:
            enot_optimizer.zero_grad()

            def closure():
                loss = nn.functional.cross_entropy(search_space(inputs), labels)
                enot_optimizer.modify_loss(loss).backward()

            enot_optimizer.step(closure)
        search_space.eval()
        enot_optimizer.prepare_validation_model()
        with torch.no_grad():
            for inputs, _ in loader:
                search_space(inputs)
        assert current_latency(search_space) <= max_latency_value
    best_arch = search_space.forward_architecture
    best_model = search_space.get_network_by_indexes(best_arch)
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3), loader)


# ------------------------------------------------------------------- 7. resolution search
def test_tutorial_7_resolution_search():
    from enot.experimental.resolution_search import (
        ConstantResolutionStrategy,
        PretrainResolutionStrategy,
        ResolutionSearcherWithFixedLatencyIterator,
    )
    from enot.latency import current_latency
    from enot.models import SearchSpaceModel
    from enot.models.mobilenet import build_mobilenet
    from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer

    model = build_mobilenet(search_ops=["MIB_k=3_t=6", "MIB_k=5_t=6", "conv1x1-skip"], num_classes=10,
                            blocks_out_channels=[8, 16], blocks_count=[1, 2], blocks_stride=[2, 2], last_channels=32)
    search_space = SearchSpaceModel(model)
    pretrain_strategy = PretrainResolutionStrategy(min_resolution=12, max_resolution=28)
    constant_strategy = ConstantResolutionStrategy((12 + 28) // 2)
    loader = digit_batches(size=24)
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9)
    enot_optimizer = EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer)
    search_space.train()
    for inputs, labels in pretrain_strategy(loader):
        if not search_space.output_distribution_optimization_enabled:
            search_space.initialize_output_distribution_optimization(inputs)
        enot_optimizer.zero_grad()
        enot_optimizer.step(lambda: nn.functional.cross_entropy(search_space(inputs), labels).backward())
    test_model = search_space.get_network_by_indexes([0] * len(search_space.search_variants_containers)).eval()
    with torch.no_grad():
        for inputs, _ in constant_strategy(loader):
            assert inputs.shape[-1] == 20
            test_model(inputs)

    target_latency = 0.22  # MMAC per sample: some architecture meets it up to 22 x 22 images
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    enot_optimizer = EnotFixedLatencySearchOptimizer(search_space, optimizer, max_latency_value=target_latency)
    searcher = ResolutionSearcherWithFixedLatencyIterator(enot_optimizer=enot_optimizer, dataloader=loader,
                                                          latency_type="mmac", min_resolution=12, max_resolution=28,
                                                          resolution_tolerance=6)
    tried = []
    for resolution, resolution_strategy in searcher:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=len(loader), eta_min=1e-8)
        search_space.train()
        for inputs, labels in resolution_strategy(loader):
            enot_optimizer.zero_grad()

            def closure():
                loss = nn.functional.cross_entropy(search_space(inputs), labels)
                enot_optimizer.modify_loss(loss).backward()

            enot_optimizer.step(closure)
            scheduler.step()
        search_space.eval()
        enot_optimizer.prepare_validation_model()
        correct = 0.0
        with torch.no_grad():
            for inputs, labels in resolution_strategy(loader):
                correct += (search_space(inputs).argmax(1) == labels).float().mean().item()
        assert current_latency(search_space) <= target_latency
        tried.append(resolution)
        searcher.set_resolution_target_metric(correct / len(loader))
    assert len(tried) >= 2 and max(tried) <= 22
    best_resolution, best_architecture = searcher.best_resolution, searcher.best_architecture
    assert current_latency(search_space) <= target_latency
    best_model = search_space.get_network_by_indexes(best_architecture)
    optimizer = torch.optim.SGD(best_model.parameters(), lr=2e-4, momentum=0.9)
    to_best_resolution = ConstantResolutionStrategy(resolution=best_resolution)
    train_loop(best_model, optimizer, list(to_best_resolution(loader)))


# --------------------------------------------------------------------------- 9. metric learning
def _write_digit_images(folder, count=16):
    from PIL import Image

    rows = ["filepath,label"]
    for (images, labels) in digit_batches(count=1, batch_size=count, size=20):
        for i, (image, label) in enumerate(zip(images, labels)):
            pixels = (image.permute(1, 2, 0) * 255).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"digit{i}.png")
            rows.append(f"{(folder / f'digit{i}.png').as_posix()},{int(label)}")
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    return folder / "train.csv"


def test_tutorial_9_metric_learning(tmp_path):
    import torch.nn.functional as F

    from enot.models import SearchSpaceModel, build_simple_block_model
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer
    from enot.utils.data.csv_annotation_dataset import CsvAnnotationDataset
    from enot.utils.data.dataloaders import (
        create_data_loader,
        create_data_loader_from_csv_annotation,
        get_default_train_transform,
        get_default_validation_transform,
    )

    class ArcfaceHead(nn.Linear):
        def __init__(self, in_channels, *, radius=64.0, angle_margin=0.5, embedding_channels=16, num_classes=10):
            super().__init__(embedding_channels, num_classes, bias=False)
            self.radius, self.angle_margin = radius, angle_margin
            self.vectorizer = nn.Sequential(_conv_bn_relu(in_channels, embedding_channels, kernel_size=1),
                                            nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, inputs, labels=None):
            cosine = F.linear(F.normalize(self.vectorizer(inputs)), F.normalize(self.weight))
            if labels is not None:
                margin = torch.cos(torch.acos(cosine.clamp(-1 + 1e-6, 1 - 1e-6)) + self.angle_margin)
                one_hot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
                cosine = cosine * (1 - one_hot) + margin * one_hot
            return cosine * self.radius

    class MetricLearningModel(nn.Module):
        def __init__(self, search_ops, angle_margin=0.0):
            super().__init__()
            self.stem = _conv_bn_relu(3, 8, stride=2)
            self.body = build_simple_block_model(in_channels=8, search_ops=search_ops, blocks_out_channels=[8, 16],
                                                 blocks_count=[1, 1], blocks_stride=[1, 2], width_multiplier=1.0,
                                                 min_channels=8, init_weights_kn=True)
            self.head = ArcfaceHead(16, angle_margin=angle_margin)

        def forward(self, inputs):
            labels = None
            if not isinstance(inputs, torch.Tensor):
                inputs, labels = inputs
            return self.head(self.body(self.stem(inputs)), labels)

    class ArcfaceTrainCsvAnnotationDataset(CsvAnnotationDataset):
        def __getitem__(self, idx):
            image, label = super().__getitem__(idx)
            return (image, label), label

    csv_path = _write_digit_images(tmp_path)
    train_transform = get_default_train_transform((16, 16), mean=[0.5] * 3, std=[0.5] * 3)
    validation_transform = get_default_validation_transform((16, 16), mean=[0.5] * 3, std=[0.5] * 3)
    train_loader = create_data_loader_from_csv_annotation(csv_annotation_path=csv_path,
                                                          dataset_transform=train_transform, batch_size=8,
                                                          num_workers=0, shuffle=True)
    arcface_loader = create_data_loader(dataset=ArcfaceTrainCsvAnnotationDataset(csv_path, transform=train_transform),
                                        batch_size=8, num_workers=0, shuffle=True, collate_fn=None)
    validation_loader = create_data_loader_from_csv_annotation(csv_annotation_path=csv_path,
                                                               dataset_transform=validation_transform, batch_size=8,
                                                               shuffle=False)
    search_space = SearchSpaceModel(MetricLearningModel(["MIB_k=3_t=3", "MIB_k=3_t=6"], angle_margin=0.1))
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    enot_optimizer = EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer)
    pretrain_loop(search_space, enot_optimizer, train_loader)
    torch.save({"model": search_space.state_dict()}, tmp_path / "checkpoint_for_tune.pth")

    def average_distance_to_centroids():
        search_space.eval()
        search_space.sample(forward_indices=[[0] for _ in search_space.search_variants_containers])
        radius = search_space.original_model.head.radius
        distances = []
        with torch.no_grad():
            for inputs, labels in validation_loader:
                out = search_space(inputs)
                distances += (1 - out[torch.arange(len(labels)), labels] / radius).tolist()
        return float(np.mean(distances))

    regular = average_distance_to_centroids()
    search_space.load_state_dict(torch.load(tmp_path / "checkpoint_for_tune.pth", map_location="cpu")["model"])
    pretrain_loop(search_space, enot_optimizer, arcface_loader)  # inputs are (images, labels) pairs here
    assert 0 <= regular <= 2 and 0 <= average_distance_to_centroids() <= 2
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    search_loop(search_space, EnotSearchOptimizer(search_space=search_space, optimizer=optimizer), train_loader,
                latency_loss_weight=0, latency_type=None)
    best_model = search_space.get_network_with_best_arch()
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3), arcface_loader)


# ------------------------------------------------------------ 10. custom operations for the builder
def test_tutorial_10_custom_operations():
    from enot.models import SearchSpaceModel, register_searchable_op
    from enot.models.mobilenet import build_mobilenet
    from enot.optimize import EnotPretrainOptimizer, EnotSearchOptimizer
    from enot.utils.common import is_valid_for_skip_connection

    activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    short_args = {"k": ("kernel_size", int), "a": ("activation", lambda x: activations[x])}

    @register_searchable_op("TutorialOp", short_args)
    class MyOperation(nn.Module):
        def __init__(self, in_channels, out_channels, stride, kernel_size=3, activation=nn.ReLU, padding=None,
                     use_skip_connection=True):
            super().__init__()
            padding = (kernel_size - 1) // 2 if padding is None else padding
            self.operation = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
                                           activation(), nn.BatchNorm2d(out_channels))
            self.use_skip_connection = use_skip_connection and is_valid_for_skip_connection(
                in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, padding=padding,
                stride=stride)

        def forward(self, x):
            y = self.operation(x)
            if self.use_skip_connection:
                y += x
            return y

    model = build_mobilenet(search_ops=["MIB_k=3_t=6", "TutorialOp_k=3", "TutorialOp_k=3_a=sigmoid"], num_classes=10,
                            blocks_out_channels=[8, 16], blocks_count=[2, 1], blocks_stride=[2, 2], last_channels=32)
    search_space = SearchSpaceModel(model)
    second = search_space.search_variants_containers[1].search_variants
    assert isinstance(second[1], MyOperation) and second[1].use_skip_connection
    assert isinstance(second[2].operation[1], nn.Sigmoid)
    assert not search_space.search_variants_containers[0].search_variants[1].use_skip_connection  # stride 2
    loader = digit_batches()
    optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06, momentum=0.9)
    pretrain_loop(search_space, EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer), loader)
    optimizer = torch.optim.RAdam(search_space.architecture_parameters(), lr=0.01)
    search_loop(search_space, EnotSearchOptimizer(search_space=search_space, optimizer=optimizer), loader,
                latency_loss_weight=0, latency_type=None)
    best_model = search_space.get_network_with_best_arch()
    train_loop(best_model, torch.optim.RAdam(best_model.parameters(), lr=1e-3), loader)


# ------------------------------------------------------------------------- multigpu_pretrain
def test_multigpu_pretrain_script_on_one_process(tmp_path):
    from torch.utils.data import DistributedSampler, TensorDataset

    from enot.distributed import (
        extract_data_from_queue,
        get_world_size,
        init_torch,
        is_dist,
        is_local_master,
        is_master,
        sync_model,
    )
    from enot.logging import prepare_log
    from enot.models import SearchSpaceModel
    from enot.models.mobilenet import build_mobilenet
    from enot.optimize import EnotPretrainOptimizer
    from enot.utils.data.dataloaders import create_data_loader

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        log_file = prepare_log(tmp_path / "experiments" / "multigpu_example")
        init_torch(cuda_optimize_for_speed=True)
        distributed, n_workers = is_dist(), get_world_size()
        images, labels = map(torch.cat, zip(*digit_batches()))
        dataset = TensorDataset(images, labels)
        # As tutorial_utils does for dist=True (here one replica, as a single process has).
        train_loader = create_data_loader(dataset=dataset, batch_size=8, num_workers=0,
                                          sampler=DistributedSampler(dataset=dataset, num_replicas=1, rank=0,
                                                                     shuffle=True))
        model = build_mobilenet(search_ops=["MIB_k=3_t=6", "MIB_k=5_t=6"], num_classes=10, blocks_out_channels=[8, 16],
                                blocks_count=[1, 1], blocks_stride=[2, 2], last_channels=32)
        search_space = SearchSpaceModel(model)
        sync_model(search_space, reduce_parameters=False, reduce_buffers=False)
        if is_local_master():
            megabytes = sum(x.element_size() * x.nelement() for x in search_space.model_parameters()) / 2**20
            logging.info(f"Gradients to transfer (in megabytes): {megabytes:.3f}Mb")
        optimizer = torch.optim.SGD(params=search_space.model_parameters(), lr=0.06 * n_workers, momentum=0.9)
        enot_optimizer = EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer)
        for epoch in range(2):
            if distributed:
                train_loader.sampler.set_epoch(epoch)
            search_space.train()
            steps = 0
            for num_sample, inputs, labels in extract_data_from_queue(train_loader, data_parallel=True,
                                                                      use_tqdm=is_local_master()):
                with torch.no_grad():
                    if not search_space.output_distribution_optimization_enabled:
                        search_space.initialize_output_distribution_optimization(inputs)
                enot_optimizer.zero_grad()
                enot_optimizer.step(lambda: nn.functional.cross_entropy(search_space(inputs), labels).backward())
                steps += 1
            assert steps == 2
            if is_master():
                search_space.eval()
                for num_sample, inputs, labels in extract_data_from_queue(train_loader, data_parallel=True):
                    search_space.sample_random_arch()
                    with torch.no_grad():
                        loss = nn.functional.cross_entropy(search_space(inputs), labels)
                logging.info(f"  loss: {loss.item():.4f}")
        assert "Gradients to transfer" in log_file.read_text() and "loss:" in log_file.read_text()
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
