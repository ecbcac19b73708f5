"""Stateful optimizer classes of ENOT's documented API, thin over :mod:`enot.functional`."""

from enot.facade._base import BaseEnotOptimizer
from enot.facade._build import build_enot_optimizer
from enot.facade._evolution import EvolutionSearch
from enot.facade._phase import SearchSpaceOptimizer
from enot.facade._pretrain import EnotPretrainOptimizer
from enot.facade._search import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer
from enot.facade._train import EnotTrainOptimizer

__all__ = [
    "BaseEnotOptimizer",
    "EnotFixedLatencySearchOptimizer",
    "EnotPretrainOptimizer",
    "EnotSearchOptimizer",
    "EnotTrainOptimizer",
    "EvolutionSearch",
    "SearchSpaceOptimizer",
    "build_enot_optimizer",
]
