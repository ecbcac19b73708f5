"""Search of the input resolution together with the architecture, under a fixed latency bound.

``PretrainResolutionStrategy`` pretrains a search space on randomly resized batches;
``ResolutionSearcherWithFixedLatencyIterator`` runs one fixed-latency search per resolution it tries
and ends on the best (resolution, architecture) pair; ``ConstantResolutionStrategy`` resizes every
batch to one resolution (validation, tuning).  See ``docs/resolution_search.md``.
"""

from enot.experimental._resolution_search import ResolutionSearcherWithFixedLatencyIterator
from enot.experimental._resolution_strategies import (
    ConstantResolutionStrategy,
    PretrainResolutionStrategy,
    ResolutionStrategy,
)

__all__ = [
    "ConstantResolutionStrategy",
    "PretrainResolutionStrategy",
    "ResolutionSearcherWithFixedLatencyIterator",
    "ResolutionStrategy",
]
