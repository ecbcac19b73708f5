"""The pure core of ``enot``: pytrees in, pytrees out.

Weights, buffers, architecture logits, optimizer state and random keys are explicit arguments and
results; nothing is mutated and nothing is global.  See ``docs/design.md`` and ``docs/functional.md``.
"""

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
from enot.functional._trees import ApplyFn, SearchSpaceTrees, combine, make_apply, split as split_search_space

__all__ = sorted([
    "SAMPLERS",
    "AdamState",
    "ApplyFn",
    "Optimizer",
    "PretrainState",
    "SGDState",
    "SearchSpaceLayout",
    "SearchSpaceTrees",
    "adam",
    "adamw",
    "best_architecture",
    "categorical_architecture",
    "combine",
    "fair_architectures",
    "fold_in",
    "generator",
    "key",
    "make_apply",
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
])
