"""Data-dependent initialisation: candidates of a container produce outputs of matching scale."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from enot.models._search_space import SearchSpaceModel

_SCALABLE = (nn.modules.batchnorm._BatchNorm, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _last_scalable(module: nn.Module) -> nn.Module | None:
    last = None
    for m in module.modules():
        if isinstance(m, _SCALABLE) and getattr(m, "weight", None) is not None:
            last = m
    return last


def _std(output: Any) -> float | None:
    if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel() > 1:
        return float(output.detach().float().std())
    return None


@torch.no_grad()
def match_output_distributions(search_space: SearchSpaceModel, args: tuple, kwargs: dict, iterations: int = 3) -> None:
    """Rescales each candidate's last affine layer so that every candidate of a container outputs
    the geometric mean of the candidates' output standard deviations on the sample batch.

    Containers are visited in module-tree order with the selected architecture; buffers (batch-norm
    statistics) are restored afterwards, so only weights change.
    """
    saved = {n: b.clone() for n, b in search_space.named_buffers()}
    try:
        for container in search_space.search_variants_containers:
            captured: dict[str, Any] = {}

            def grab(module: nn.Module, inputs: tuple, kw: dict, captured: dict = captured) -> None:
                captured.setdefault("inputs", (inputs, kw))

            handle = container.register_forward_pre_hook(grab, with_kwargs=True)
            try:
                search_space(*args, **kwargs)
            finally:
                handle.remove()
            if "inputs" not in captured:
                continue  # the container is not on the selected path (nested in an unselected candidate)
            inputs, kw = captured["inputs"]
            for _ in range(iterations):
                stds = [_std(candidate(*inputs, **kw)) for candidate in container.search_variants]
                valid = [s for s in stds if s is not None and s > 0]
                if len(valid) < 2:
                    break
                target = math.exp(sum(math.log(s) for s in valid) / len(valid))
                for candidate, std in zip(container.search_variants, stds):
                    layer = _last_scalable(candidate)
                    if layer is None or std is None or std <= 0:
                        continue
                    scale = target / std
                    layer.weight.mul_(scale)
                    if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.bias is not None:
                        layer.bias.mul_(scale)
    finally:
        for name, buffer in search_space.named_buffers():
            buffer.copy_(saved[name])
