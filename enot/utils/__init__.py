"""Utilities: dataloader mapping, batch-norm recalibration, portable models, checkpoints."""

from enot.models import make_portable
from enot.utils._atomic import atomic_write
from enot.utils._checkpoint import Restored, load_checkpoint, save_checkpoint
from enot.utils.batch_norm import tune_bn_stats
from enot.utils.dataloader2model import default_sample_to_model_inputs

__all__ = [
    "Restored",
    "atomic_write",
    "default_sample_to_model_inputs",
    "load_checkpoint",
    "make_portable",
    "save_checkpoint",
    "tune_bn_stats",
]
