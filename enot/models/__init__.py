"""Search spaces: `SearchVariantsContainer`, `SearchSpaceModel`, ready-made searchable ops, builders."""

from enot.models._container import SearchVariantsContainer
from enot.models._ops import SearchableFuseableSkipConv, SearchableMobileInvertedBottleneck, parse_op
from enot.models._portable import make_portable
from enot.models._registry import register_searchable_op
from enot.models._search_space import SearchSpaceModel
from enot.models._simple_block import build_simple_block_model
from enot.models.mobilenet import MobileNetBaseHead, MobileNetBaseStem, build_mobilenet

__all__ = sorted([
    "MobileNetBaseHead",
    "MobileNetBaseStem",
    "SearchSpaceModel",
    "SearchVariantsContainer",
    "SearchableFuseableSkipConv",
    "SearchableMobileInvertedBottleneck",
    "build_mobilenet",
    "build_simple_block_model",
    "make_portable",
    "parse_op",
    "register_searchable_op",
])
