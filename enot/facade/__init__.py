"""Stateful optimizer classes of ENOT's documented API, thin over :mod:`enot.functional`."""

from enot.facade._base import BaseEnotOptimizer
from enot.facade._pretrain import EnotPretrainOptimizer

__all__ = ["BaseEnotOptimizer", "EnotPretrainOptimizer"]
from enot.facade._build import build_enot_optimizer  # noqa: E402
from enot.facade._train import EnotTrainOptimizer  # noqa: E402

__all__ = sorted({*__all__, "EnotTrainOptimizer", "build_enot_optimizer"})
from enot.facade._search import EnotFixedLatencySearchOptimizer, EnotSearchOptimizer  # noqa: E402

__all__ = sorted({*__all__, "EnotFixedLatencySearchOptimizer", "EnotSearchOptimizer"})
