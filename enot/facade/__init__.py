"""Stateful optimizer classes of ENOT's documented API, thin over :mod:`enot.functional`."""

from enot.facade._base import BaseEnotOptimizer
from enot.facade._pretrain import EnotPretrainOptimizer

__all__ = ["BaseEnotOptimizer", "EnotPretrainOptimizer"]
