"""Latency of search spaces: calculators, the latency container, statistics and a heat map.

``initialize_latency`` measures every candidate of every container on the shapes that reach it and
applies the resulting :class:`SearchSpaceLatencyContainer` to the search space.  The maths lives in
:mod:`enot.functional` (``LatencyTable``, ``architecture_latency``, ``expected_latency``, ...).
"""

from enot.latency._calculators import (
    LatencyCalculator,
    MacCalculator,
    TimeCalculator,
    available_calculators,
    register_calculator,
)
from enot.latency._container import SearchSpaceLatencyContainer
from enot.latency._helpers import LatencyMixin, MacCalculatorPthflops, MacCalculatorThop, conv_mac_count
from enot.latency._initialize import initialize_latency
from enot.latency._plot import plot_latency_heatmap
from enot.latency._stats import (
    best_arch_latency,
    current_latency,
    max_latency,
    mean_latency,
    median_latency,
    min_latency,
    reset_latency,
)

__all__ = sorted([
    "LatencyCalculator",
    "LatencyMixin",
    "MacCalculator",
    "MacCalculatorPthflops",
    "MacCalculatorThop",
    "SearchSpaceLatencyContainer",
    "TimeCalculator",
    "available_calculators",
    "best_arch_latency",
    "conv_mac_count",
    "current_latency",
    "initialize_latency",
    "max_latency",
    "mean_latency",
    "median_latency",
    "min_latency",
    "plot_latency_heatmap",
    "register_calculator",
    "reset_latency",
])
