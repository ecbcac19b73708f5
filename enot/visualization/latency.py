"""`plot_latency_heatmap` at ENOT 2.x's import path and keywords."""

from __future__ import annotations

from typing import Any

from enot.latency import plot_latency_heatmap as _plot

__all__ = ["plot_latency_heatmap"]


def plot_latency_heatmap(
    container: Any,
    annotate_values: bool = True,
    figsize: tuple[float, float] | None = None,
    **kwargs: Any,
) -> Any:
    """Draws the latency heat map of a latency container or a search space with latency.

    ENOT 2.x's form of :func:`enot.latency.plot_latency_heatmap`: ``annotate_values`` writes each
    value in its cell, ``figsize`` sizes a new figure; other keywords (``cmap``, ``candidate_names``,
    ``ax``) pass through.

    Returns:
        The matplotlib ``Axes``.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If both ``figsize`` and ``ax`` are given.
    """
    if figsize is not None:
        if kwargs.get("ax") is not None:
            raise ValueError("plot_latency_heatmap: give figsize or ax, not both")
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError(
                "plot_latency_heatmap needs matplotlib, an optional extra: pip install 'enot-open-nas[plot]'"
            ) from error
        _, kwargs["ax"] = plt.subplots(figsize=figsize)
    return _plot(container, annotate=annotate_values, **kwargs)
