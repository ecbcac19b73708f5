"""Every public import path of shared/API.md is importable, and `__all__` lists are sorted."""

from __future__ import annotations

import importlib

import pytest

PATHS = {
    "enot.models": ["SearchSpaceModel", "SearchVariantsContainer", "SearchableMobileInvertedBottleneck",
                    "SearchableFuseableSkipConv", "build_mobilenet"],
    "enot.models.operations": ["SearchVariantsContainer", "SearchableMobileInvertedBottleneck",
                               "SearchableFuseableSkipConv"],
    "enot.models.mobilenet": ["build_mobilenet", "MobileNetBaseStem", "MobileNetBaseHead"],
    "enot.optimize": ["EnotPretrainOptimizer", "EnotSearchOptimizer", "EnotFixedLatencySearchOptimizer",
                      "EnotTrainOptimizer", "BaseEnotOptimizer", "build_enot_optimizer", "EvolutionSearch"],
    "enot.facade": ["EnotPretrainOptimizer", "EnotSearchOptimizer", "EnotFixedLatencySearchOptimizer",
                    "EnotTrainOptimizer", "BaseEnotOptimizer", "build_enot_optimizer", "EvolutionSearch"],
    "enot.latency": ["initialize_latency", "available_calculators", "SearchSpaceLatencyContainer", "min_latency",
                     "max_latency", "mean_latency", "median_latency", "current_latency", "best_arch_latency",
                     "reset_latency", "plot_latency_heatmap"],
    "enot.distributed": ["init_from_env", "GradientReducer", "DistributedSampler", "is_main_process",
                         "print_main", "save_checkpoint"],
    "enot.functional": ["sgd", "adam", "adamw", "pretrain_step", "search_step", "bn_tune", "make_apply", "random",
                        "select_architecture", "sample_feasible_architecture", "architecture_latency",
                        "expected_latency", "evolution_search", "evolution_init",
                        "evolution_step", "EvolutionConfig", "bn_tuned_evaluation"],
    "enot.functional.random": ["key", "split", "fold_in", "generator"],
    "enot.utils": ["default_sample_to_model_inputs", "tune_bn_stats", "make_portable"],
    "enot.utils.common": ["make_portable"],
    "enot.utils.batch_norm": ["tune_bn_stats"],
    "enot.utils.dataloader2model": ["default_sample_to_model_inputs"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_public_paths_import(path):
    module = importlib.import_module(path)
    for name in PATHS[path]:
        assert hasattr(module, name), f"{path}.{name}"


@pytest.mark.parametrize(
    "path", ["enot.models", "enot.functional", "enot.facade", "enot.optimize", "enot.utils", "enot.latency", "enot.distributed"]
)
def test_all_is_sorted(path):
    names = importlib.import_module(path).__all__
    assert list(names) == sorted(names)
