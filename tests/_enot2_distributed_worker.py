"""What each of two spawned ranks runs in `test_enot2_distributed.py`: ENOT 2.x's distributed names and the
multigpu_pretrain sequence of calls, under Gloo on the CPU."""

from __future__ import annotations

import logging
import os

import torch
from _ranks import run_rank
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import enot.distributed as ed
from enot.logging import prepare_log
from enot.models import SearchSpaceModel
from enot.models.mobilenet import build_mobilenet
from enot.optimize import EnotPretrainOptimizer


def job(rank: int, outdir: str) -> dict:
    log_file = prepare_log(os.path.join(outdir, "experiments", "run"))
    ed.init_torch(cuda_optimize_for_speed=True)
    result: dict = {"is_dist": ed.is_dist(), "is_master": ed.is_master(), "is_local_master": ed.is_local_master(),
                    "world": ed.get_world_size(), "log_file": None if log_file is None else str(log_file)}
    # sync_model: copy rank 0's tensors, or average them.
    torch.manual_seed(rank)  # different weights on each rank
    linear = nn.Linear(3, 2)
    result["before"] = linear.weight.detach().clone()
    ed.sync_model(linear, reduce_parameters=False, reduce_buffers=False)
    result["copied"] = linear.weight.detach().clone()
    torch.manual_seed(rank)
    linear = nn.Linear(3, 2)
    ed.sync_model(linear)
    result["averaged"] = linear.weight.detach().clone()
    # The multigpu_pretrain sequence: different initial weights, synced, two steps on each rank's shard.
    torch.manual_seed(10 + rank)
    model = build_mobilenet(["MIB_k=3_t=3", "conv1x1-skip"], num_classes=3, blocks_out_channels=[8], blocks_count=[1],
                            blocks_stride=[2], in_channels=1, stem_channels=8, stem_out_channels=8, last_channels=16)
    search_space = SearchSpaceModel(model)
    ed.sync_model(search_space, reduce_parameters=False, reduce_buffers=False)
    g = torch.Generator().manual_seed(0)
    dataset = TensorDataset(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g))
    loader = DataLoader(dataset, batch_size=4, sampler=DistributedSampler(dataset, shuffle=True))
    optimizer = torch.optim.SGD(search_space.model_parameters(), lr=0.05 * ed.get_world_size(), momentum=0.9)
    enot_optimizer = EnotPretrainOptimizer(search_space=search_space, optimizer=optimizer)
    loader.sampler.set_epoch(0)
    seen = []
    for num_sample, inputs, labels in ed.extract_data_from_queue(loader, data_parallel=True,
                                                                 use_tqdm=False):
        seen.append(num_sample)
        with torch.no_grad():
            if not search_space.output_distribution_optimization_enabled:
                search_space.initialize_output_distribution_optimization(inputs)
        enot_optimizer.zero_grad()
        enot_optimizer.step(lambda: nn.functional.cross_entropy(search_space(inputs), labels).backward())
    if ed.is_local_master():
        logging.info("pretrained %d steps", len(seen))
    result["steps"] = seen
    result["weights"] = {k: v.detach().clone() for k, v in search_space.state_dict().items()}
    return result


def main(rank: int, world: int, port: int, outdir: str) -> None:
    run_rank(rank, world, port, outdir, lambda: job(rank, outdir))
