"""Older import path used by ENOT's tutorials: the container and the ready-made searchable ops."""

from enot.models._container import SearchVariantsContainer
from enot.models._ops import SearchableFuseableSkipConv, SearchableMobileInvertedBottleneck

__all__ = ["SearchVariantsContainer", "SearchableFuseableSkipConv", "SearchableMobileInvertedBottleneck"]
