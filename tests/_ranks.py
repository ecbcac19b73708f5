"""Spawned Gloo ranks for the distributed tests, both sides.

The test (parent) calls :func:`launch`: it spawns one process per rank on a worker module's ``main``,
waits for them until a deadline and loads what each saved.  Each rank's ``main`` calls :func:`run_rank`:
it joins through the environment torchrun would set, saves its job's result to ``<outdir>/rank<r>.pt``
or its traceback to ``<outdir>/rank<r>.err``, and leaves the process group.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import torch

import enot.distributed as ed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target: Callable[..., None], world: int, outdir: Any, deadline_s: float, *args: Any
           ) -> tuple[list[int | None], list[Any | None]]:
    """Runs ``target(rank, world, port, outdir, *args)`` on ``world`` spawned processes; returns their exit
    codes and saved results (``None`` for a rank that saved none).  Fails the test, naming the ranks, if
    any still runs after ``deadline_s`` seconds (a hang); those are killed first."""
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=target, args=(rank, world, port, str(outdir), *args)) for rank in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + deadline_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    if hung:
        pytest.fail(f"ranks {hung} of {target.__module__}.main{args} still ran after {deadline_s} s (a hang)")
    results = []
    for rank in range(world):
        path = os.path.join(outdir, f"rank{rank}.pt")
        results.append(torch.load(path, weights_only=False) if os.path.exists(path) else None)
    return [p.exitcode for p in procs], results


def errors(outdir: Any) -> str:
    """The tracebacks the ranks saved, for the message of a failed assertion."""
    return "\n".join(
        open(os.path.join(outdir, name)).read() for name in sorted(os.listdir(outdir)) if name.endswith(".err")
    )


def run_rank(rank: int, world: int, port: int, outdir: str, job: Callable[[], Any]) -> None:
    """One spawned rank: sets torchrun's environment, runs ``job()`` on one thread and saves its result
    (or its traceback, then re-raises); leaves the process group in any case."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    try:
        torch.save(job(), os.path.join(outdir, f"rank{rank}.pt"))
    except BaseException:
        with open(os.path.join(outdir, f"rank{rank}.err"), "w") as f:
            f.write(traceback.format_exc())
        raise
    finally:
        ed.destroy()
