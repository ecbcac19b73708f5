"""The code blocks of docs/tutorial.md run, in order, as a user would paste them into a script."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def run_as_script(blocks: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch, name: str):
    """Writes the blocks into ``folder/name.py`` and imports it (a real module with a source file,
    so that pickling and TorchScript find its classes), with ``folder`` as the working directory."""
    source = "\n".join(f"# ---- block {i} ----\n{block}" for i, block in enumerate(blocks))
    (folder / f"{name}.py").write_text(source)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is fastest and steady on a busy machine
    try:
        return importlib.import_module(name)
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop(name, None)


def test_tutorial_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn", reason="the tutorial uses scikit-learn's digits")
    blocks = python_blocks(DOCS / "tutorial.md")
    assert len(blocks) >= 8
    tutorial = run_as_script(blocks, tmp_path, monkeypatch, "tutorial_as_a_script")
    assert {"network.pt", "network.ts", "tune.pt"} <= {p.name for p in tmp_path.iterdir()}
    assert tutorial.current_latency(tutorial.search_space) <= tutorial.max_latency_value
    assert type(tutorial.search_optimizer).__name__ == "EnotFixedLatencySearchOptimizer"


def test_functional_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn", reason="the page uses scikit-learn's digits")
    blocks = python_blocks(DOCS / "functional.md")
    assert len(blocks) >= 5 and "compile=True" in blocks[0]
    # A cold torch.compile takes minutes on a small CPU; tests/test_compile.py checks the compiled
    # path against eager, so the page runs eagerly here.
    blocks = [block.replace("compile=True", "compile=False") for block in blocks]
    page = run_as_script(blocks, tmp_path, monkeypatch, "functional_as_a_script")
    assert page.latency <= page.max_latency
    assert int(page.restored.state.step) == page.PRETRAIN_STEPS


def test_readme_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(DOCS.parent / "README.md")
    assert len(blocks) >= 2
    readme = run_as_script(blocks, tmp_path, monkeypatch, "readme_as_a_script")
    assert (tmp_path / "network.pt").exists()
    assert readme.architecture == readme.search_optimizer.prepare_validation_model()
