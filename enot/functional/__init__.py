"""The pure core of ``enot``: pytrees in, pytrees out.

Weights, buffers, architecture logits, optimizer state and random keys are explicit arguments and
results; nothing is mutated and nothing is global.  See ``docs/design.md`` and ``docs/functional.md``.
"""

from enot.functional._bn import batch_norm_buffer_names, bn_tune, frozen_batch_norm
from enot.functional._latency import (
    LatencyDistribution,
    LatencyTable,
    architecture_latency,
    enumerate_latencies,
    expected_latency,
    latency_distribution,
    latency_sum,
    latency_table,
    max_latency,
    max_latency_architecture,
    mean_latency,
    median_latency,
    min_latency,
    min_latency_architecture,
)
from enot.functional._layout import SearchSpaceLayout, path_names, select, validate_architecture
from enot.functional._optim import AdamState, Optimizer, SGDState, adam, adamw, sgd
from enot.functional._pretrain import (
    SAMPLERS,
    PretrainState,
    next_architectures,
    path_gradients,
    pretrain_init,
    pretrain_step,
)
from enot.functional._random import fold_in, generator, key, split
from enot.functional._sampling import (
    best_architecture,
    categorical_architecture,
    fair_architectures,
    uniform_architecture,
)
from enot.functional._search import (
    SearchSample,
    SearchState,
    installed_hooks,
    logit_names,
    next_search_sample,
    paired_hooks,
    search_gradients,
    search_init,
    search_step,
)
from enot.functional._selection import (
    architecture_log_probability,
    feasible_alternatives,
    sample_feasible_architecture,
    select_architecture,
)
from enot.functional._trees import ApplyFn, SearchSpaceTrees, combine, make_apply, split as split_search_space

__all__ = sorted([
    "SAMPLERS",
    "AdamState",
    "LatencyDistribution",
    "LatencyTable",
    "ApplyFn",
    "Optimizer",
    "PretrainState",
    "SGDState",
    "SearchSpaceLayout",
    "SearchSpaceTrees",
    "adam",
    "adamw",
    "architecture_latency",
    "best_architecture",
    "categorical_architecture",
    "combine",
    "enumerate_latencies",
    "expected_latency",
    "fair_architectures",
    "fold_in",
    "generator",
    "key",
    "latency_distribution",
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
    "path_gradients",
    "path_names",
    "pretrain_init",
    "pretrain_step",
    "select",
    "sgd",
    "split",
    "split_search_space",
    "uniform_architecture",
    "validate_architecture",
    "SearchSample",
    "SearchState",
    "architecture_log_probability",
    "batch_norm_buffer_names",
    "bn_tune",
    "feasible_alternatives",
    "frozen_batch_norm",
    "installed_hooks",
    "logit_names",
    "next_search_sample",
    "paired_hooks",
    "sample_feasible_architecture",
    "search_gradients",
    "search_init",
    "search_step",
    "select_architecture",
])
