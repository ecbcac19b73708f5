"""Utilities: dataloader mapping, batch-norm recalibration, portable models, checkpoints, the check of a
``torch.optim`` state dict."""

from enot.models import make_portable
from enot.utils._atomic import atomic_write
from enot.utils._checkpoint import Restored, load_checkpoint, save_checkpoint
from enot.utils._optim_state import PARAM_SHAPED_STATE, optimizer_state_problem
from enot.utils.batch_norm import tune_bn_stats
from enot.utils.dataloader2model import default_sample_to_model_inputs

__all__ = [
    "PARAM_SHAPED_STATE",
    "Restored",
    "atomic_write",
    "default_sample_to_model_inputs",
    "load_checkpoint",
    "make_portable",
    "optimizer_state_problem",
    "save_checkpoint",
    "tune_bn_stats",
]
