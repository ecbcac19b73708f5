"""`plot_latency_heatmap`: containers x candidates, annotated (matplotlib, an optional extra)."""

from __future__ import annotations

import math
from typing import Any

from enot.latency._stats import ContainerOrSpace, _container

__all__ = ["plot_latency_heatmap"]


def plot_latency_heatmap(
    container: ContainerOrSpace,
    *,
    ax: Any = None,
    annotate: bool = True,
    cmap: str = "viridis",
    candidate_names: list[str] | None = None,
) -> Any:
    """Draws the latency of every candidate (columns) of every container (rows) as a heat map.

    Cells of containers with fewer candidates stay blank.  The title gives the latency type and the
    constant part.

    Args:
        container: A :class:`SearchSpaceLatencyContainer` or a search space with latency.
        ax: A matplotlib ``Axes`` to draw on (default: a new figure).
        annotate: Write each value in its cell.
        cmap: Matplotlib colour map name.
        candidate_names: Optional column labels (one per column).

    Returns:
        The matplotlib ``Axes``.

    Raises:
        ImportError: If matplotlib is not installed (``pip install 'enot-open-nas[plot]'``).
        ValueError: If ``candidate_names`` has the wrong length.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plot_latency_heatmap needs matplotlib, an optional extra: pip install 'enot-open-nas[plot]' "
            "(or pip install matplotlib)"
        ) from error
    import numpy as np

    latencies = _container(container)
    operations = latencies.operations_latencies
    columns = max(len(values) for values in operations)
    if candidate_names is not None and len(candidate_names) != columns:
        raise ValueError(f"candidate_names has {len(candidate_names)} names; the widest container has {columns} candidates")
    grid = np.full((len(operations), columns), math.nan)
    for c, values in enumerate(operations):
        grid[c, : len(values)] = values
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.9 * columns, 1.0 + 0.4 * len(operations)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label=latencies.latency_type)
    ax.set_xticks(range(columns), candidate_names or [str(k) for k in range(columns)])
    ax.set_yticks(range(len(operations)), [str(c) for c in range(len(operations))])
    ax.set_xlabel("candidate")
    ax.set_ylabel("container")
    ax.set_title(f"latency ({latencies.latency_type}), constant {latencies.constant_latency:.4g}")
    if annotate:
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2
        for c, values in enumerate(operations):
            for k, value in enumerate(values):
                ax.text(k, c, f"{value:.3g}", ha="center", va="center", fontsize=8,
                        color="black" if value > middle else "white")
    return ax
