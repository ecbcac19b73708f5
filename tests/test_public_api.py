"""Every public import path of shared/API.md is importable, and `__all__` lists are sorted."""

from __future__ import annotations

import importlib

import pytest

PATHS = {
    "enot.models": ["SearchSpaceModel", "SearchVariantsContainer", "SearchableMobileInvertedBottleneck",
                    "SearchableFuseableSkipConv", "build_mobilenet", "register_searchable_op",
                    "build_simple_block_model"],
    "enot.models.operations": ["SearchVariantsContainer", "SearchableMobileInvertedBottleneck",
                               "SearchableFuseableSkipConv"],
    "enot.models.mobilenet": ["build_mobilenet", "MobileNetBaseStem", "MobileNetBaseHead"],
    "enot.optimize": ["EnotPretrainOptimizer", "EnotSearchOptimizer", "EnotFixedLatencySearchOptimizer",
                      "EnotTrainOptimizer", "BaseEnotOptimizer", "build_enot_optimizer", "EvolutionSearch"],
    "enot.facade": ["EnotPretrainOptimizer", "EnotSearchOptimizer", "EnotFixedLatencySearchOptimizer",
                    "EnotTrainOptimizer", "BaseEnotOptimizer", "build_enot_optimizer", "EvolutionSearch"],
    "enot.latency": ["initialize_latency", "available_calculators", "SearchSpaceLatencyContainer", "min_latency",
                     "max_latency", "mean_latency", "median_latency", "current_latency", "best_arch_latency",
                     "reset_latency", "plot_latency_heatmap", "LatencyMixin", "conv_mac_count", "MacCalculatorThop",
                     "MacCalculatorPthflops"],
    "enot.distributed": ["init_from_env", "GradientReducer", "DistributedSampler", "is_main_process",
                         "print_main", "save_checkpoint", "init_torch", "is_dist", "is_master", "is_local_master",
                         "get_world_size", "sync_model", "extract_data_from_queue"],
    "enot.functional": ["sgd", "adam", "adamw", "pretrain_step", "search_step", "bn_tune", "make_apply", "random",
                        "select_architecture", "sample_feasible_architecture", "architecture_latency",
                        "expected_latency", "evolution_search", "evolution_init",
                        "evolution_step", "EvolutionConfig", "bn_tuned_evaluation"],
    "enot.functional.random": ["key", "split", "fold_in", "generator"],
    "enot.utils": ["default_sample_to_model_inputs", "tune_bn_stats", "make_portable"],
    "enot.utils.common": ["make_portable", "is_valid_for_skip_connection", "input_hw"],
    "enot.utils.batch_norm": ["tune_bn_stats"],
    "enot.utils.dataloader2model": ["default_sample_to_model_inputs"],
    # ENOT 2.x names the tutorials use (shared/API.md, "ENOT 2.x API used by the tutorials").
    "enot.experimental.resolution_search": ["PretrainResolutionStrategy", "ConstantResolutionStrategy",
                                            "ResolutionSearcherWithFixedLatencyIterator"],
    "enot.visualization.latency": ["plot_latency_heatmap"],
    "enot.utils.data.csv_annotation_dataset": ["CsvAnnotationDataset"],
    "enot.utils.data.dataloaders": ["create_data_loader", "create_data_loader_from_csv_annotation",
                                    "get_default_train_transform", "get_default_validation_transform"],
    "enot.logging": ["prepare_log"],
    "enot.autogeneration": ["TransformationParameters", "generate_pruned_search_variants_model"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_public_paths_import(path):
    module = importlib.import_module(path)
    for name in PATHS[path]:
        assert hasattr(module, name), f"{path}.{name}"


@pytest.mark.parametrize(
    "path", ["enot.models", "enot.functional", "enot.facade", "enot.optimize", "enot.utils", "enot.latency", "enot.distributed",
             "enot.experimental.resolution_search", "enot.utils.data", "enot.utils.common"]
)
def test_all_is_sorted(path):
    names = importlib.import_module(path).__all__
    assert list(names) == sorted(names)
