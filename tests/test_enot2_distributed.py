"""ENOT 2.x's distributed names on two spawned Gloo ranks: sync_model copies or averages, the
multigpu_pretrain sequence ends with identical weights on both ranks, prepare_log writes on rank 0 only."""

from __future__ import annotations

import _enot2_distributed_worker as worker
import pytest
import torch
from _ranks import errors, launch

WORLD, DEADLINE_S = 2, 240


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    outdir = tmp_path_factory.mktemp("enot2_distributed")
    codes, results = launch(worker.main, WORLD, outdir, DEADLINE_S)
    assert codes == [0] * WORLD, errors(outdir)
    return outdir, results


def test_rank_queries_and_log(ranks):
    outdir, (r0, r1) = ranks
    assert r0["is_dist"] and r1["is_dist"] and r0["world"] == r1["world"] == 2
    assert (r0["is_master"], r1["is_master"]) == (True, False)
    assert (r0["is_local_master"], r1["is_local_master"]) == (True, False)
    assert r1["log_file"] is None and "pretrained 2 steps" in open(r0["log_file"]).read()


def test_sync_model_copies_or_averages(ranks):
    _, (r0, r1) = ranks
    assert not torch.equal(r0["before"], r1["before"])
    assert torch.equal(r0["copied"], r0["before"]) and torch.equal(r1["copied"], r0["before"])
    mean = (r0["before"] + r1["before"]) / 2
    assert torch.allclose(r0["averaged"], mean) and torch.equal(r0["averaged"], r1["averaged"])


def test_multigpu_pretrain_sequence_keeps_ranks_identical(ranks):
    _, (r0, r1) = ranks
    assert r0["steps"] == r1["steps"] == [0, 1]  # 16 samples, 2 ranks, batches of 4
    for name, value in r0["weights"].items():
        assert torch.equal(value, r1["weights"][name]), name
