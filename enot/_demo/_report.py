"""The demo's outputs: the console table, the JSON report, the model files and the plots."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from enot._demo._pipeline import Outcome, Settings
from enot._demo._space import BLOCKS, OPS
from enot.utils import atomic_write

FILES = {
    "model": "model.pt",
    "onnx": "model.onnx",
    "latency": "latency_container.json",
    "report": "report.json",
    "probabilities_plot": "architecture_probabilities.png",
    "latency_accuracy_plot": "latency_vs_accuracy.png",
}


def table(outcome: Outcome) -> str:
    """The chosen candidate of every container, latencies against the bound, accuracies."""
    final = outcome.probabilities[-1]
    lines = [
        f"{'block':<6}{'out, stride':<13}{'chosen':<15}{'p(chosen)':>10}   {'baseline':<15}",
    ]
    for c, ((width, stride), k, b) in enumerate(zip(BLOCKS, outcome.architecture, outcome.baseline_architecture)):
        lines.append(f"{c:<6}{f'{width}, {stride}':<13}{OPS[k]:<15}{final[c][k]:>10.3f}   {OPS[b]:<15}")
    lines += [
        "",
        f"latency (MMAC per sample): space {outcome.min_latency:.4f} .. {outcome.max_latency:.4f}, "
        f"bound {outcome.bound:.4f}",
        f"{'':<24}{'latency':>10}{'supernet acc':>15}{'tuned test acc':>17}",
        f"{'searched architecture':<24}{outcome.latency:>10.4f}{outcome.supernet_accuracy:>15.2%}{outcome.accuracy:>17.2%}",
        f"{'random within bound':<24}{outcome.baseline_latency:>10.4f}{outcome.baseline_supernet_accuracy:>15.2%}"
        f"{outcome.baseline_accuracy:>17.2%}",
    ]
    return "\n".join(lines)


def save_model(network: torch.nn.Module, output_dir: Path) -> Path:
    """``torch.save`` of the whole portable network (loads with ``torch.load(weights_only=False)``
    where ``enot`` is not installed)."""
    path = output_dir / FILES["model"]
    atomic_write(path, lambda file: torch.save(network, file))
    return path


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def save_onnx(network: torch.nn.Module, output_dir: Path) -> Path | None:
    """ONNX export with a dynamic batch dimension, checked against onnxruntime when it is installed.

    Returns the path, or ``None`` when the ``onnx`` extra is not installed.
    """
    if not onnx_available():
        return None
    path = output_dir / FILES["onnx"]
    example = torch.zeros(2, 1, 8, 8)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # "torchvision is not installed" notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network.eval(), (example,), str(path), dynamo=True, verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    onnx_logger.setLevel(level)
    try:
        import onnxruntime
    except ImportError:
        return path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = network(x).numpy()
    if abs(got - expected).max() > 1e-4:
        raise RuntimeError(f"the ONNX export disagrees with PyTorch by {abs(got - expected).max():.2e}")
    return path


def _path_entry(
    architecture: list[int], latency: float, bound: float, supernet_accuracy: float, accuracy: float
) -> dict[str, Any]:
    """The report's entry for one architecture (the searched one or the baseline)."""
    return {
        "architecture": architecture,
        "operations": [OPS[k] for k in architecture],
        "latency": latency,
        "within_bound": latency <= bound,
        "supernet_search_accuracy": supernet_accuracy,
        "test_accuracy": accuracy,
    }


def report(outcome: Outcome, settings: Settings, files: dict[str, str], seconds: float) -> dict[str, Any]:
    """The JSON report."""
    return {
        "settings": {**vars(settings)},
        "latency_type": "mmac",
        "latency_unit": "millions of multiply-accumulates per sample",
        "min_latency": outcome.min_latency,
        "max_latency": outcome.max_latency,
        "max_latency_value": outcome.bound,
        "candidates": list(OPS),
        "searched": _path_entry(
            outcome.architecture, outcome.latency, outcome.bound, outcome.supernet_accuracy, outcome.accuracy
        ),
        "baseline": _path_entry(
            outcome.baseline_architecture, outcome.baseline_latency, outcome.bound,
            outcome.baseline_supernet_accuracy, outcome.baseline_accuracy,
        ),
        "final_probabilities": outcome.probabilities[-1],
        "sampled_architectures": outcome.sampled,
        "seconds": {**outcome.seconds, "total": round(seconds, 3)},
        "files": files,
    }


def save_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def plot_probabilities(outcome: Outcome, path: Path) -> None:
    """One panel per container: the probability of each candidate over the search steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = torch.tensor(outcome.probabilities)  # (steps + 1, containers, candidates)
    n = history.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), sharey=True, squeeze=False)
    for c, ax in enumerate(axes[0]):
        for k, op in enumerate(OPS):
            style = "-" if k == outcome.architecture[c] else "--"
            ax.plot(history[:, c, k].numpy(), style, label=op, linewidth=2 if style == "-" else 1)
        ax.set_title(f"block {c}")
        ax.set_xlabel("search step")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("probability")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Architecture probabilities during search (solid: chosen candidate)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency_accuracy(outcome: Outcome, path: Path) -> None:
    """Sampled architectures' latency against supernet accuracy, the bound, the chosen one and the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([s["latency"] for s in outcome.sampled], [s["accuracy"] for s in outcome.sampled],
               s=18, color="tab:gray", label="sampled architectures")
    ax.scatter([outcome.latency], [outcome.supernet_accuracy], s=160, marker="*", color="tab:red",
               label="searched architecture", zorder=3)
    ax.scatter([outcome.baseline_latency], [outcome.baseline_supernet_accuracy], s=60, marker="D",
               color="tab:blue", label="random within bound", zorder=3)
    ax.axvline(outcome.bound, color="tab:red", linestyle=":", label="latency bound")
    ax.set_xlabel("latency (MMAC per sample)")
    ax.set_ylabel("accuracy on the search split (supernet weights)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
