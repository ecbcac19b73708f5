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

    Raises:
        TypeError: If the item is a bare tensor (a loader of inputs without labels): its first row
            would be taken for the batch; the message says how to pass such a loader.
    """
    if isinstance(sample, torch.Tensor):
        raise TypeError(
            f"the data loader yields bare tensors (shape {tuple(sample.shape)}), but the default "
            "sample_to_model_inputs expects items (inputs, labels, ...) and takes item[0]; for a loader of inputs "
            "only, pass sample_to_model_inputs=lambda batch: ((batch,), {})"
        )
    return (sample[0],), {}
