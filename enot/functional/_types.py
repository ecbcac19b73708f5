"""Type aliases shared by the steps, and the default mapping of a dataloader item to model inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["InputsFn", "LossFn", "ReduceFn", "Tree", "default_sample_to_model_inputs"]

Tree = dict[str, torch.Tensor]
"""Weights, buffers or gradients keyed by name (``search_space.named_parameters()`` names)."""

LossFn = Callable[[Any, Any], torch.Tensor]
"""``loss_fn(output, batch) -> scalar tensor``."""

InputsFn = Callable[[Any], tuple[tuple, dict]]
"""``sample_to_model_inputs(item) -> (args, kwargs)`` of the model."""

ReduceFn = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]
"""Across processes: ``{name: tensor} -> {name: tensor}`` (``enot.distributed.GradientReducer``)."""


def default_sample_to_model_inputs(sample: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Maps a dataloader item ``(inputs, target, ...)`` to model inputs ``((inputs,), {})``.

    A custom mapping takes one dataloader item and returns ``(args_tuple, kwargs_dict)``.
    """
    return (sample[0],), {}
