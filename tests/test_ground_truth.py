"""The ground-truth benchmark's committed table matches its space (`benchmarks/ground_truth/`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import enot.functional as ef
from enot.latency import initialize_latency

GROUND_TRUTH = Path(__file__).resolve().parents[1] / "benchmarks" / "ground_truth"
sys.path.insert(0, str(GROUND_TRUTH))
from generate import SEEDS  # noqa: E402
from space import BLOCKS, OPS, all_architectures, build_search_space  # noqa: E402


def test_space_enumerates_distinct_architectures() -> None:
    architectures = all_architectures()
    assert len(architectures) == len(OPS) ** len(BLOCKS) >= 300
    assert len({tuple(a) for a in architectures}) == len(architectures)
    space = build_search_space(0)
    assert [c.n_choices for c in space.search_variants_containers] == [len(OPS)] * len(BLOCKS)


def test_stand_alone_network_is_the_supernet_path() -> None:
    space = build_search_space(0).eval()
    x = torch.randn(4, 1, 14, 14, generator=torch.Generator().manual_seed(0))
    for architecture in ([0, 0, 0], [6, 3, 1], [2, 0, 5]):
        net = space.get_network_by_indexes(architecture).eval()
        space.sample(architecture)
        with torch.no_grad():
            torch.testing.assert_close(net(x), space(x))


def test_committed_table_is_complete_and_its_latencies_current() -> None:
    table = json.loads((GROUND_TRUTH / "table.json").read_text())
    if not table["meta"]["complete"]:
        pytest.fail("benchmarks/ground_truth/table.json is not complete: run generate.py, then --collect")
    rows = {tuple(r["architecture"]): r for r in table["architectures"]}
    assert sorted(rows) == [tuple(a) for a in all_architectures()]
    space = build_search_space(0)
    latency = initialize_latency("mmac", space, (torch.zeros(1, 1, 14, 14),)).table()
    for architecture, row in rows.items():
        assert row["seeds"] == list(SEEDS) and len(row["test_accuracy"]) == len(SEEDS)
        assert row["mmac"] == pytest.approx(float(ef.architecture_latency(list(architecture), latency)), abs=1e-6)
        assert row["mean_test_accuracy"] == pytest.approx(sum(row["test_accuracy"]) / len(SEEDS))
        assert row["mean_val_accuracy"] == pytest.approx(sum(row["val_accuracy"]) / len(SEEDS))
