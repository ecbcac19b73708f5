"""What each rank of the distributed tests runs; with ``world=1`` and no process group, the reference.

`tests/test_distributed.py` spawns two processes on ``main`` (Gloo, CPU); each runs a job (a list of
scenarios), saves its results to ``<outdir>/rank<r>.pt`` and exits.  The one-process references call
the same scenario functions with ``rank=0, world=1`` over the whole global batch.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as Fn
from _ranks import run_rank
from torch import nn

import enot.distributed as ed
import enot.functional as ef
from enot.models import SearchSpaceModel, SearchVariantsContainer
from enot.optimize import EnotPretrainOptimizer

PER_RANK = 3  # samples per rank in every batch


class NoNorm(nn.Module):
    """Containers without batch norm: a batch's gradient is the mean of its samples' gradients, so
    two ranks with half a batch each reproduce the one-process run over the whole batch."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.a = SearchVariantsContainer([nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Identity()])
        self.b = SearchVariantsContainer([nn.Tanh(), nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(self.b(self.a(x)) + x)


def global_batches(n: int, world: int, shape: tuple[int, ...] = (1, 6, 6), classes: int = 3) -> list[tuple]:
    g = torch.Generator().manual_seed(5)
    size = PER_RANK * world
    return [
        (torch.randn(size, *shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (size,), generator=g))
        for _ in range(n)
    ]


def shard(batch: tuple, rank: int, world: int) -> tuple:
    """This rank's contiguous slice of a global batch (all of it when ``world == 1``)."""
    x, y = batch
    return x.chunk(world)[rank], y.chunk(world)[rank]


def _loss(output: torch.Tensor, batch: tuple) -> torch.Tensor:
    return Fn.cross_entropy(output, batch[1])


def _momentum(space: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    names = {id(p): n for n, p in space.named_parameters()}
    return {names[id(p)]: s["momentum_buffer"].clone() for p, s in opt.state.items()}


# ------------------------------------------------------------------------------------ scenarios
def pretrain_facade(rank: int, world: int, *, steps: int = 5, ghost: int = 2, global_batch_world: int = 2) -> dict:
    """EnotPretrainOptimizer + SGD with momentum, ``ghost`` model_steps per step, NoNorm space.

    The data is the global batches of ``global_batch_world`` ranks; this rank takes its slice.
    """
    torch.manual_seed(0)
    space = SearchSpaceModel(NoNorm()).double()
    opt = torch.optim.SGD(space.model_parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    enot_opt = EnotPretrainOptimizer(space, opt, check_recommended_optimizations=False, seed=3)
    batches = global_batches(steps * ghost, global_batch_world)
    architectures, losses = [], []
    for s in range(steps):
        enot_opt.zero_grad()
        for batch in batches[s * ghost:(s + 1) * ghost]:
            x, y = shard(batch, rank, world)

            def closure(x=x, y=y):
                loss = Fn.cross_entropy(space(x), y)
                loss.backward()
                return loss

            losses.append(float(enot_opt.model_step(closure).detach()))
            architectures += enot_opt.last_architectures
        enot_opt.step()
    return {
        "state": {k: v.clone() for k, v in space.state_dict().items()},
        "momentum": _momentum(space, opt),
        "architectures": architectures,
        "reduced": enot_opt.reducer is not None,
    }


def pretrain_functional(rank: int, world: int, reducer: Any = None, *, steps: int = 4) -> dict:
    """enot.functional.pretrain_step (fair sampler, pure SGD with momentum) with the reductions passed in."""
    torch.manual_seed(0)
    space = SearchSpaceModel(NoNorm()).double()
    trees = ef.split_search_space(space)
    pure = ef.sgd(0.2, momentum=0.9, weight_decay=1e-3)
    state = ef.pretrain_init(trees.params, trees.buffers, pure, ef.random.key(11))
    apply = ef.make_apply(space)
    kwargs = {} if reducer is None else {"reduce_grads": reducer, "reduce_buffers": reducer.reduce_buffers}
    architectures = []
    for batch in global_batches(steps, 2):
        state, info = ef.pretrain_step(
            apply, pure, _loss, state, [shard(batch, rank, world)], sampler="fair", **kwargs
        )
        architectures += info["architectures"]
    return {"params": state.params, "momentum": state.opt_state.momentum, "architectures": architectures}


def many_steps_with_batch_norm(rank: int, world: int, *, steps: int = 60) -> dict:
    """A space with batch norm, many small steps: ranks must sample alike and end bit-identical."""
    from spaces import Nested

    torch.manual_seed(rank)  # different initial weights per rank: the optimizer broadcasts rank 0's
    space = SearchSpaceModel(Nested())
    opt = torch.optim.SGD(space.model_parameters(), lr=0.01, momentum=0.5)
    enot_opt = EnotPretrainOptimizer(space, opt, check_recommended_optimizations=False, seed=123, sampler="fair")
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    architectures = []
    for _ in range(steps):
        x, y = torch.randn(4, 1, 5, 5, generator=g), torch.randint(0, 3, (4,), generator=g)

        def closure(x=x, y=y):
            Fn.cross_entropy(space(x), y).backward()

        enot_opt.step(closure)
        architectures += enot_opt.last_architectures
    return {"state": {k: v.clone() for k, v in space.state_dict().items()}, "architectures": architectures}


def search_facade(rank: int, world: int, *, steps: int = 4, tune: int = 2) -> dict:
    """EnotSearchOptimizer with batch-norm tuning on a space with batch norm (Nested).

    Per step every rank tunes on ``tune`` batches of its own and computes the loss on its slice of
    the global batch; the one-process run (``world == 1``) tunes on the batches of both ranks in turn
    (``2 * tune``) and computes the loss on the whole global batch.
    """
    from spaces import Nested

    from enot.optimize import EnotSearchOptimizer

    torch.manual_seed(0)
    space = SearchSpaceModel(Nested()).double()
    g = torch.Generator().manual_seed(9)

    def bn_batch():
        return (torch.randn(PER_RANK, 1, 6, 6, generator=g, dtype=torch.float64) * 2 + 0.5,)

    # bn[s][r]: the tuning batches of rank r at step s; step == steps is the validation tuning.
    bn = [[[bn_batch() for _ in range(tune)] for _ in range(2)] for _ in range(steps + 1)]
    mine = [item for per_step in bn for item in (per_step[rank] if world > 1 else per_step[0] + per_step[1])]
    per_step = tune if world > 1 else 2 * tune
    opt = torch.optim.Adam(space.architecture_parameters(), lr=0.2)
    enot_opt = EnotSearchOptimizer(
        space, opt, bn_tune_dataloader=mine, bn_tune_batches=per_step, bn_validation_tune_batches=per_step, seed=4
    )
    architectures = []
    for batch in global_batches(steps, 2):
        x, y = shard(batch, rank, world)

        def closure(x=x, y=y):
            Fn.cross_entropy(space(x), y).backward()

        enot_opt.zero_grad()
        enot_opt.step(closure)
        architectures.append(list(space.forward_architecture))
    selected = enot_opt.prepare_validation_model()
    return {
        "logits": [p.detach().clone() for p in space.architecture_parameters()],
        "probabilities": [p.detach().clone() for p in space.architecture_probabilities],
        "architectures": architectures,
        "selected": selected,
        "buffers": {n: b.clone() for n, b in space.named_buffers()},
        "reduced": enot_opt.reducer is not None,
    }


def search_functional(rank: int, world: int, reducer: Any = None, *, steps: int = 3, tune: int = 2) -> dict:
    """enot.functional.search_step with batch-norm tuning and the reductions passed in (as search_facade)."""
    import functools

    from spaces import Nested

    torch.manual_seed(0)
    space = SearchSpaceModel(Nested()).double()
    trees = ef.split_search_space(space)
    pure = ef.adam(0.2)
    state = ef.search_init(trees.buffers, trees.logits, pure, ef.random.key(6))
    g = torch.Generator().manual_seed(9)
    kwargs = {}
    if reducer is not None:
        kwargs = {"reduce_grads": reducer, "reduce_buffers": functools.partial(reducer.reduce_buffers, sum_counters=True)}
    architectures = []
    for batch in global_batches(steps, 2):
        per_rank = [[(torch.randn(PER_RANK, 1, 6, 6, generator=g, dtype=torch.float64),) for _ in range(tune)] for _ in range(2)]
        bn = per_rank[rank] if world > 1 else per_rank[0] + per_rank[1]
        state, info = ef.search_step(
            ef.make_apply(space), pure, _loss, trees.params, state, [shard(batch, rank, world)], bn_tune_data=[bn], **kwargs
        )
        architectures += [s.architecture for s in info["samples"]]
    return {"logits": list(state.logits), "buffers": state.buffers, "architectures": architectures}


def ddp_is_refused(rank: int, world: int) -> dict:
    """Wrapping the search space in DistributedDataParallel: refused at construction and in the closure."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    space = SearchSpaceModel(NoNorm())
    ddp = DistributedDataParallel(space)
    messages = {}
    try:
        EnotPretrainOptimizer(ddp, torch.optim.SGD(space.model_parameters(), lr=0.1))
    except TypeError as error:
        messages["construct"] = str(error)
    enot_opt = EnotPretrainOptimizer(
        space, torch.optim.SGD(space.model_parameters(), lr=0.1), check_recommended_optimizations=False
    )
    try:
        enot_opt.step(lambda: ddp(torch.randn(2, 1, 6, 6)).sum().backward())
    except TypeError as error:
        messages["forward"] = str(error)
    return messages


def _error(error: BaseException) -> tuple[str, str]:
    return type(error).__name__, str(error)


def failures(rank: int, world: int, outdir: str) -> dict:
    """Bad input on rank 1, then a NaN loss on rank 1, then rank 1 dying in the functional loop."""
    out: dict[str, Any] = {}
    torch.manual_seed(0)
    space = SearchSpaceModel(NoNorm()).double()
    enot_opt = EnotPretrainOptimizer(
        space, torch.optim.SGD(space.model_parameters(), lr=0.1), check_recommended_optimizations=False
    )

    def run(bad_rank_input: torch.Tensor, key: str) -> None:
        for step in range(3):
            good = torch.randn(PER_RANK, 1, 6, 6, dtype=torch.float64)
            x = bad_rank_input if (step == 2 and rank == 1) else good

            def closure(x=x):
                loss = space(x).sum()
                loss.backward()
                return loss

            try:
                enot_opt.step(closure)
            except Exception as error:  # noqa: BLE001  (recorded for the test)
                out[key] = (step, *_error(error))
                return
        out[key] = None

    run(torch.randn(PER_RANK, 2, 6, 6, dtype=torch.float64), "bad_input")  # 2 channels: the stem wants 1
    enot_opt.zero_grad()
    run(torch.full((PER_RANK, 1, 6, 6), float("nan"), dtype=torch.float64), "nan_loss")
    out["after"] = {k: v.clone() for k, v in space.state_dict().items()}
    torch.save(out, os.path.join(outdir, f"rank{rank}.pt"))

    # Rank 1 dies without a word inside the pure loop; rank 0 must fail (not hang) in the reduction.
    reducer = ed.GradientReducer()
    try:
        for step in range(3):
            if step == 1 and rank == 1:
                os._exit(3)
            pretrain_functional(rank, world, reducer, steps=1)
        out["dead_peer"] = None
    except Exception as error:  # noqa: BLE001
        out["dead_peer"] = _error(error)
    torch.save(out, os.path.join(outdir, f"rank{rank}.pt"))
    return out


# -------------------------------------------------------------------------------------- entry
JOBS = {
    "main": lambda rank, world, outdir: {
        "pretrain_facade": pretrain_facade(rank, world),
        "pretrain_functional": pretrain_functional(rank, world, ed.GradientReducer()),
        "many_steps": many_steps_with_batch_norm(rank, world),
        "ddp": ddp_is_refused(rank, world),
    },
    "search": lambda rank, world, outdir: {
        "search_facade": search_facade(rank, world),
        "search_functional": search_functional(rank, world, ed.GradientReducer()),
    },
    "failures": failures,
}


def main(rank: int, world: int, port: int, outdir: str, job: str, timeout_s: float) -> None:
    """Entry point of one spawned rank: join the group from the environment, run ``job``, save."""

    def run() -> dict:
        info = ed.init_from_env(timeout_s=timeout_s)
        assert (info.rank, info.world_size, info.backend) == (rank, world, "gloo"), info
        return JOBS[job](rank, world, outdir)

    run_rank(rank, world, port, outdir, run)
