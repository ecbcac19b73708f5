"""Golden-section resolution search: for every strictly unimodal metric the best resolution found is within
the tolerance of the true best, every resolution is tried at most once, and far fewer than all are tried."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from enot.experimental._resolution_search import next_resolution, shrink_bracket


@st.composite
def unimodal(draw):
    low = draw(st.integers(1, 400))
    high = low + draw(st.integers(0, 300))
    tolerance = draw(st.integers(1, 40))
    peak = draw(st.integers(low, high))
    # Strictly increasing up to the peak, strictly decreasing after: random positive steps.
    rise = draw(st.lists(st.floats(0.01, 5.0), min_size=peak - low, max_size=peak - low))
    fall = draw(st.lists(st.floats(0.01, 5.0), min_size=high - peak, max_size=high - peak))
    values = {peak: 0.0}
    for i, step in enumerate(reversed(rise)):
        values[peak - 1 - i] = values[peak - i] - step
    for i, step in enumerate(fall):
        values[peak + 1 + i] = values[peak + i] - step
    return low, high, tolerance, peak, values


@settings(max_examples=150, deadline=None)
@given(unimodal())
def test_golden_section_finds_the_peak_within_the_tolerance(problem):
    low, high, tolerance, peak, values = problem
    metrics: dict[int, float] = {}
    a, b = low, high
    while (r := next_resolution(metrics, a, b, tolerance)) is not None:
        assert r not in metrics and low <= r <= high
        metrics[r] = values[r]
        a, b = shrink_bracket(metrics, a, b, tolerance)
        assert a <= peak <= b  # the bracket never loses the peak
    best = max(metrics, key=metrics.get)
    assert abs(best - peak) <= tolerance
    width = high - low
    assert len(metrics) <= width + 1
    if width > tolerance:
        assert len(metrics) <= 4 + 2 * math.ceil(math.log(width / tolerance) / math.log((1 + 5**0.5) / 2))
