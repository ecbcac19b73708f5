"""The code blocks of the pages on resolution search, custom ops and self-stated latency run as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tutorial import DOCS, python_blocks, run_as_script


def test_resolution_search_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn", reason="the page uses scikit-learn's digits")
    page = run_as_script(python_blocks(DOCS / "resolution_search.md"), tmp_path, monkeypatch, "resolution_page")
    assert 12 <= page.searcher.best_resolution <= 28 and len(page.searcher.metrics) >= 2
    assert page.current_latency(page.search_space) <= 0.22


def test_custom_ops_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = run_as_script(python_blocks(DOCS / "custom_ops.md"), tmp_path, monkeypatch, "custom_ops_page")
    containers = page.search_space.search_variants_containers
    assert isinstance(containers[0].search_variants[1], page.ConvAct)


def test_latency_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = run_as_script(python_blocks(DOCS / "latency.md"), tmp_path, monkeypatch, "latency_page")
    assert page.container.operations_latencies == [[0.147456, 0.4096]]
