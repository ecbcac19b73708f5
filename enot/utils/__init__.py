"""Utilities: dataloader mapping, batch-norm recalibration, portable models."""

from enot.models._portable import make_portable
from enot.utils.batch_norm import tune_bn_stats
from enot.utils.dataloader2model import default_sample_to_model_inputs

__all__ = ["default_sample_to_model_inputs", "make_portable", "tune_bn_stats"]
from enot.utils._checkpoint import Restored, load_checkpoint, save_checkpoint  # noqa: E402

__all__ = sorted({*__all__, "Restored", "load_checkpoint", "save_checkpoint"})
