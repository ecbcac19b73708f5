"""Running ``enot`` under ``torchrun``: process-group set-up, gradient reduction, rank-0 helpers.

The ENOT optimizers average gradients across processes themselves (do not wrap the search space in
``DistributedDataParallel``); the pure steps of :mod:`enot.functional` take the reductions as
arguments (``reduce_grads=GradientReducer()``).  See ``docs/distributed.md``.
"""

from torch.utils.data.distributed import DistributedSampler

from enot.distributed._ddp import check_not_ddp, no_ddp_forward
from enot.distributed._enot2 import (
    extract_data_from_queue,
    init_torch,
    is_dist,
    is_local_master,
    is_master,
    local_rank,
    sync_model,
)
from enot.distributed._env import (
    DistributedInfo,
    barrier,
    destroy,
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    is_main_process,
)
from enot.distributed._main import main_process_only, print_main, save_checkpoint
from enot.distributed._reduce import DistributedStepError, GradientReducer, fingerprint

__all__ = sorted([
    "DistributedInfo",
    "DistributedSampler",
    "DistributedStepError",
    "GradientReducer",
    "barrier",
    "check_not_ddp",
    "destroy",
    "extract_data_from_queue",
    "fingerprint",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "init_torch",
    "is_dist",
    "is_distributed",
    "is_local_master",
    "is_main_process",
    "is_master",
    "local_rank",
    "main_process_only",
    "no_ddp_forward",
    "print_main",
    "save_checkpoint",
    "sync_model",
])
