"""Pretrain an ENOT search space on several processes with ``torchrun`` (CPU/Gloo or GPU/NCCL).

Run it on 2 processes of this machine::

    torchrun --standalone --nproc-per-node=2 examples/distributed_pretrain.py --epochs 3

on 2 machines with 4 GPUs each (run on both, with the first machine's address)::

    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        examples/distributed_pretrain.py --epochs 3

or on one process, unchanged: ``python examples/distributed_pretrain.py``.

Each rank reads its own shard of the data (``DistributedSampler``); the ENOT optimizer samples the
same architecture on every rank (same ``seed``), averages the sampled path's gradients and batch-norm
statistics across ranks at ``step()`` and updates, so all ranks hold the same weights; rank 0 alone
prints and writes the checkpoint.  The search space is *not* wrapped in DistributedDataParallel.
Data: scikit-learn's digits (8x8 images, shipped with scikit-learn, no download).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as Fn
from torch.utils.data import DataLoader, TensorDataset

import enot.distributed as ed
from enot.models import SearchSpaceModel, build_mobilenet
from enot.optimize import EnotPretrainOptimizer


def digits() -> TensorDataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.images.astype(np.float32) / 16.0)[:, None])
    return TensorDataset(x, torch.from_numpy(data.target.astype(np.int64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="per process; the global batch is N times it")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="the same on every rank")
    parser.add_argument("--checkpoint", default="distributed_pretrain.pt")
    args = parser.parse_args()

    info = ed.init_from_env(timeout_s=300)  # a rank that dies makes the others fail within 5 minutes
    torch.manual_seed(args.seed)  # rank 0's weights are broadcast at the first step anyway
    search_space = SearchSpaceModel(build_mobilenet(
        ["MIB_k=3_t=3", "MIB_k=5_t=3", "conv1x1-skip"], num_classes=10, blocks_out_channels=[16, 24],
        blocks_count=[2, 2], blocks_stride=[1, 2], in_channels=1,
    )).to(info.device)

    dataset = digits()
    sampler = ed.DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, seed=args.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    x0, _ = next(iter(loader))
    search_space.initialize_output_distribution_optimization(x0.to(info.device))

    optimizer = torch.optim.SGD(search_space.model_parameters(), lr=args.lr, momentum=0.9, weight_decay=4e-5)
    enot_optimizer = EnotPretrainOptimizer(search_space, optimizer, seed=args.seed)  # reducer="auto"
    ed.print_main(f"world size {info.world_size}, backend {info.backend}, device {info.device}, "
                  f"reducer {enot_optimizer.reducer}")

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle per epoch, the same on every rank
        search_space.train()
        total, count = torch.zeros((), device=info.device), 0
        for x, y in loader:
            x, y = x.to(info.device), y.to(info.device)

            def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                loss = Fn.cross_entropy(search_space(x), y)
                loss.backward()
                return loss

            enot_optimizer.zero_grad()
            total += enot_optimizer.step(closure).detach()
            count += 1
        if info.world_size > 1:  # the mean loss over all ranks, for the log line only
            torch.distributed.all_reduce(total)
            total /= info.world_size
        ed.print_main(f"epoch {epoch}: mean loss {float(total) / count:.4f} "
                      f"(last architecture {enot_optimizer.last_architectures[-1]})")
        ed.save_checkpoint(args.checkpoint, search_space, enot_optimizer, extra={"epoch": epoch})
    ed.print_main(f"checkpoint written to {os.path.abspath(args.checkpoint)}")
    ed.destroy()


if __name__ == "__main__":
    main()
