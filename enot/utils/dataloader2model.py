"""Mapping of dataloader items to model inputs."""

from __future__ import annotations

from typing import Any

__all__ = ["default_sample_to_model_inputs"]


def default_sample_to_model_inputs(sample: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Maps a dataloader item ``(inputs, target, ...)`` to model inputs ``((inputs,), {})``.

    A custom mapping takes one dataloader item and returns ``(args_tuple, kwargs_dict)``.
    """
    return (sample[0],), {}
