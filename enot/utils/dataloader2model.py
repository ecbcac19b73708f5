"""Mapping of dataloader items to model inputs (the default lives in :mod:`enot.functional`)."""

from enot.functional import default_sample_to_model_inputs

__all__ = ["default_sample_to_model_inputs"]
