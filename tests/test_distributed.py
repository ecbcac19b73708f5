"""Distributed pretrain on two CPU processes (Gloo): equal to one process, ranks agree, failures stop all.

Each job spawns two fresh processes running `tests/_distributed_worker.py` and waits for them with a
deadline, so a hang fails the test instead of blocking the suite.  The one-process references run
the same scenario functions here, over the whole global batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _distributed_worker as worker
import pytest
import torch
import torch.distributed as dist
from _ranks import errors, launch

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs Gloo")

WORLD = 2
JOB_DEADLINE_S = 90.0  # generous for a loaded 2-core machine; a healthy job takes a few seconds
COLLECTIVE_TIMEOUT_S = 20.0  # what a rank waits in a collective for a dead peer before it raises
# Float64, two ranks: the reduction only changes the order of the sums, so weights agree to rounding.
ATOL, RTOL = 1e-12, 1e-10


def _launch(job: str, outdir) -> tuple[list[int | None], list[dict | None]]:
    """Runs ``job`` on two spawned ranks; returns their exit codes and saved results."""
    return launch(worker.main, WORLD, outdir, JOB_DEADLINE_S, job, COLLECTIVE_TIMEOUT_S)


def _job_results(tmp_path_factory, job: str) -> list[dict]:
    """The results of ``job``, which every rank must finish without an error."""
    outdir = tmp_path_factory.mktemp(f"distributed_{job}")
    codes, results = _launch(job, outdir)
    assert codes == [0] * WORLD, errors(outdir)
    return results


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    return _job_results(tmp_path_factory, "main")


def _assert_trees_close(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=ATOL, rtol=RTOL, msg=name)


def _assert_trees_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_two_rank_pretrain_equals_one_process_over_the_global_batch(main_job):
    reference = worker.pretrain_facade(0, 1)
    assert not reference["reduced"]
    for rank in range(WORLD):
        result = main_job[rank]["pretrain_facade"]
        assert result["reduced"]
        assert result["architectures"] == reference["architectures"]
        _assert_trees_close(result["state"], reference["state"])
        _assert_trees_close(result["momentum"], reference["momentum"])
    # The update moved the weights: the comparison is not between two untouched models.
    torch.manual_seed(0)
    initial = worker.SearchSpaceModel(worker.NoNorm()).double().state_dict()
    assert any(not torch.allclose(initial[n], reference["state"][n]) for n in initial)


def test_two_rank_functional_pretrain_equals_one_process(main_job):
    reference = worker.pretrain_functional(0, 1)
    for rank in range(WORLD):
        result = main_job[rank]["pretrain_functional"]
        assert result["architectures"] == reference["architectures"]
        _assert_trees_close(result["params"], reference["params"])
        _assert_trees_close(result["momentum"], reference["momentum"])


def test_ranks_agree_on_architectures_and_end_bit_identical(main_job):
    first, second = (main_job[rank]["many_steps"] for rank in range(WORLD))
    assert len(first["architectures"]) == 60 * 3  # fair sampler: max(n_choices) = 3 paths per step
    assert first["architectures"] == second["architectures"]
    assert len({tuple(a) for a in first["architectures"]}) > 1
    # Different initial weights and different data per rank; rank 0's weights were broadcast and
    # every step averaged gradients and batch-norm statistics: weights and buffers agree to the bit.
    _assert_trees_equal(first["state"], second["state"])
    assert all(torch.isfinite(v.double()).all() for v in first["state"].values())


def test_distributed_data_parallel_is_refused_with_a_clear_error(main_job):
    for rank in range(WORLD):
        messages = main_job[rank]["ddp"]
        assert set(messages) == {"construct", "forward"}
        for message in messages.values():
            assert "DistributedDataParallel" in message and "bare SearchSpaceModel" in message


def test_a_failing_rank_stops_every_rank_with_a_clear_error(tmp_path):
    codes, (first, second) = _launch("failures", tmp_path)
    # Bad input on rank 1 at step 2: rank 1 raises the real error, rank 0 a DistributedStepError naming it.
    step, kind, message = second["bad_input"]
    assert step == 2 and kind == "RuntimeError"
    step, kind, message = first["bad_input"]
    assert step == 2 and kind == "DistributedStepError"
    assert "rank 1 raised RuntimeError" in message and "no rank applied" in message
    # A NaN loss on rank 1: every rank raises at the same step, nothing is updated anywhere.
    assert second["nan_loss"][:2] == (2, "FloatingPointError")
    assert first["nan_loss"][:2] == (2, "DistributedStepError") and "FloatingPointError" in first["nan_loss"][2]
    _assert_trees_equal(first["after"], second["after"])
    # Rank 1 exits without a word inside the pure loop: rank 0 fails in the reduction instead of hanging.
    assert codes[1] == 3
    assert first["dead_peer"] is not None, "rank 0 finished although its peer died"


def test_the_example_runs_under_torchrun_as_documented(tmp_path):
    pytest.importorskip("sklearn")
    example = Path(__file__).resolve().parents[1] / "examples" / "distributed_pretrain.py"
    assert "torchrun --standalone --nproc-per-node=2 examples/distributed_pretrain.py" in example.read_text()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(example),
               "--epochs", "1", "--checkpoint", str(tmp_path / "ckpt.pt")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=JOB_DEADLINE_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world size 2, backend gloo" in done.stdout and "epoch 0: mean loss" in done.stdout
    assert done.stdout.count("epoch 0") == 1  # rank 0 alone prints
    assert (tmp_path / "ckpt.pt").exists()


# ------------------------------------------------------------------ single process, no spawning
def test_single_process_helpers_need_no_process_group(monkeypatch, capsys):
    import enot.distributed as ed

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    info = ed.init_from_env()
    assert (info.rank, info.world_size, info.backend) == (0, 1, None)
    assert ed.is_main_process() and not ed.is_distributed() and ed.get_world_size() == 1
    ed.print_main("hello")
    assert capsys.readouterr().out == "hello\n"
    assert ed.__all__ == sorted(ed.__all__)
    with pytest.raises(RuntimeError, match="init_from_env"):
        ed.GradientReducer()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="torchrun"):
        ed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        ed.init_from_env()


def test_optimizer_without_process_group_has_no_reducer_and_rejects_bad_ones():
    space = worker.SearchSpaceModel(worker.NoNorm())
    opt = torch.optim.SGD(space.model_parameters(), lr=0.1)
    assert worker.EnotPretrainOptimizer(space, opt).reducer is None
    with pytest.raises(TypeError, match="GradientReducer"):
        worker.EnotPretrainOptimizer(space, opt, reducer="gloo")


def test_functional_reduction_hooks_default_to_identity():
    import enot.functional as ef

    def run(**kwargs):
        torch.manual_seed(0)
        space = worker.SearchSpaceModel(worker.NoNorm()).double()
        trees = ef.split_search_space(space)
        pure = ef.sgd(0.1, momentum=0.9)
        state = ef.pretrain_init(trees.params, trees.buffers, pure, ef.random.key(1))
        for batch in worker.global_batches(3, 1):
            state, _ = ef.pretrain_step(ef.make_apply(space), pure, worker._loss, state, [batch], **kwargs)
        return state.params

    plain = run()
    hooked = run(reduce_grads=lambda g: dict(g), reduce_buffers=lambda b: dict(b))
    _assert_trees_equal(plain, hooked)


@pytest.fixture(scope="module")
def search_job(tmp_path_factory):
    return _job_results(tmp_path_factory, "search")


def test_two_rank_search_ends_with_the_same_probabilities_as_one_process(search_job):
    results = search_job
    reference = worker.search_facade(0, 1)
    assert not reference["reduced"]
    first, second = (r["search_facade"] for r in results)
    for key in ("logits", "probabilities"):
        assert all(torch.equal(a, b) for a, b in zip(first[key], second[key])), key  # ranks: bit-identical
        for a, b in zip(first[key], reference[key]):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)
    assert first["architectures"] == second["architectures"] == reference["architectures"]
    assert first["selected"] == second["selected"] == reference["selected"]
    # The validation model's batch norm was tuned on both ranks' batches: the same as one process.
    _assert_trees_equal(first["buffers"], second["buffers"])
    _assert_trees_close(first["buffers"], reference["buffers"])
    assert any(not torch.allclose(p, torch.full_like(p, 1 / len(p))) for p in reference["probabilities"])


def test_two_rank_functional_search_equals_one_process(search_job):
    results = search_job
    reference = worker.search_functional(0, 1)
    first, second = (r["search_functional"] for r in results)
    assert first["architectures"] == second["architectures"] == reference["architectures"]
    for a, b, c in zip(first["logits"], second["logits"], reference["logits"]):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=ATOL, rtol=RTOL)
    _assert_trees_equal(first["buffers"], second["buffers"])
    _assert_trees_close(first["buffers"], reference["buffers"])
