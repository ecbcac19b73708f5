"""The pure core of ``enot``: pytrees in, pytrees out.

Weights, buffers, architecture logits, optimizer state and random keys are explicit arguments and
results; nothing is mutated and nothing is global (``write_trees`` is the one function that writes
into a module, and says so).  Random keys live in :mod:`enot.functional.random`.  Import it as
``import enot.functional as ef``.  See ``docs/design.md`` and ``docs/functional.md``.
"""

from enot.functional import random
from enot.functional._bn import batch_norm_buffer_names, bn_tune
from enot.functional._bn_scheme import BNScheme
from enot.functional._estimator import Estimator, available_estimators, get_estimator, register_estimator
from enot.functional._evolution import (
    EvolutionConfig,
    EvolutionResult,
    EvolutionState,
    bn_tuned_evaluation,
    evolution_best,
    evolution_init,
    evolution_search,
    evolution_step,
)
from enot.functional._first_order import FirstOrderSample
from enot.functional._latency import (
    LatencyDistribution,
    LatencyTable,
    architecture_latency,
    check_latency_bound,
    enumerate_latencies,
    expected_latency,
    latency_distribution,
    latency_penalty,
    latency_sum,
    latency_table,
    max_latency,
    max_latency_architecture,
    mean_latency,
    median_latency,
    min_latency,
    min_latency_architecture,
)
from enot.functional._layout import SearchSpaceLayout, path_names, subtree, validate_architecture
from enot.functional._optim import AdamState, Optimizer, SGDState, adam, adamw, sgd
from enot.functional._pick import ValidationPick, validation_pick
from enot.functional._pretrain import (
    PretrainState,
    next_architectures,
    path_gradients,
    pretrain_init,
    pretrain_step,
)
from enot.functional._samplers import (
    Sampler,
    SamplingInputs,
    available_samplers,
    register_sampler,
    sample_architectures,
)
from enot.functional._sampling import (
    best_architecture,
    categorical_architecture,
    fair_architectures,
    uniform_architecture,
)
from enot.functional._sandwich import Sandwich, check_sandwich, distillation_loss, extreme_architectures, sandwich_architectures
from enot.functional._search import (
    BN_SCHEMES,
    ESTIMATORS,
    BNCacheEntry,
    SearchConfig,
    SearchSample,
    SearchState,
    cached_tuned_buffers,
    next_search_sample,
    paired_hooks,
    search_config,
    search_gradients,
    search_init,
    search_step,
    two_path_output,
)
from enot.functional._selection import (
    architecture_log_probability,
    sample_feasible_architecture,
    select_architecture,
    top_k_architectures,
)
from enot.functional._trees import Apply, SearchSpaceTrees, make_apply, write_trees
from enot.functional._trees import split as split_search_space
from enot.functional._two_path import TwoPathSample
from enot.functional._types import InputsFn, LossFn, ReduceFn, Tree, default_sample_to_model_inputs

__all__ = [
    "AdamState",
    "Apply",
    "BNCacheEntry",
    "BNScheme",
    "BN_SCHEMES",
    "ESTIMATORS",
    "Estimator",
    "EvolutionConfig",
    "EvolutionResult",
    "EvolutionState",
    "FirstOrderSample",
    "InputsFn",
    "LatencyDistribution",
    "LatencyTable",
    "LossFn",
    "Optimizer",
    "PretrainState",
    "ReduceFn",
    "SGDState",
    "Sampler",
    "SamplingInputs",
    "Sandwich",
    "SearchConfig",
    "SearchSample",
    "SearchSpaceLayout",
    "SearchSpaceTrees",
    "SearchState",
    "Tree",
    "TwoPathSample",
    "ValidationPick",
    "adam",
    "adamw",
    "architecture_latency",
    "architecture_log_probability",
    "available_estimators",
    "available_samplers",
    "batch_norm_buffer_names",
    "best_architecture",
    "bn_tune",
    "bn_tuned_evaluation",
    "cached_tuned_buffers",
    "categorical_architecture",
    "check_latency_bound",
    "check_sandwich",
    "default_sample_to_model_inputs",
    "distillation_loss",
    "enumerate_latencies",
    "evolution_best",
    "evolution_init",
    "evolution_search",
    "evolution_step",
    "expected_latency",
    "extreme_architectures",
    "fair_architectures",
    "get_estimator",
    "latency_distribution",
    "latency_penalty",
    "latency_sum",
    "latency_table",
    "make_apply",
    "max_latency",
    "max_latency_architecture",
    "mean_latency",
    "median_latency",
    "min_latency",
    "min_latency_architecture",
    "next_architectures",
    "next_search_sample",
    "paired_hooks",
    "path_gradients",
    "path_names",
    "pretrain_init",
    "pretrain_step",
    "random",
    "register_estimator",
    "register_sampler",
    "sample_architectures",
    "sample_feasible_architecture",
    "sandwich_architectures",
    "search_config",
    "search_gradients",
    "search_init",
    "search_step",
    "select_architecture",
    "sgd",
    "split_search_space",
    "subtree",
    "top_k_architectures",
    "two_path_output",
    "uniform_architecture",
    "validate_architecture",
    "validation_pick",
    "write_trees",
]
