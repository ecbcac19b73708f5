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

    Raises:
        ValueError: If the candidates of a container give outputs of different shapes (or one fails on
            the container's input), naming the container and the shapes; no weight has changed then.
    """
    saved = {n: b.clone() for n, b in search_space.named_buffers()}
    weights = {n: p.detach().clone() for n, p in search_space.named_parameters()}
    names = search_space.layout.container_names
    try:
        for name, container in zip(names, search_space.search_variants_containers):
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
            _check_output_shapes(name, container, inputs, kw)
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
    except BaseException:
        for name, param in search_space.named_parameters():
            param.copy_(weights[name])
        raise
    finally:
        for name, buffer in search_space.named_buffers():
            buffer.copy_(saved[name])


def _shape(output: Any) -> Any:
    """The shapes of ``output``'s tensors in its structure (tuples, lists, dicts), other leaves by type."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (list, tuple)):
        return type(output)(_shape(o) for o in output) if type(output) in (list, tuple) else tuple(map(_shape, output))
    if isinstance(output, dict):
        return {k: _shape(v) for k, v in output.items()}
    return type(output).__name__


def _check_output_shapes(name: str, container: nn.Module, inputs: tuple, kwargs: dict) -> None:
    """Raises ``ValueError`` unless every candidate of ``container`` runs on its input with one output shape."""
    shapes = []
    for k, candidate in enumerate(container.search_variants):
        try:
            shapes.append(_shape(candidate(*inputs, **kwargs)))
        except Exception as error:  # noqa: BLE001 - re-raised with the container and candidate named
            raise ValueError(
                f"candidate {k} of container {name!r} fails on the container's input "
                f"{_shape(inputs if len(inputs) != 1 else inputs[0])}: {type(error).__name__}: {error}"
            ) from error
    if any(shape != shapes[0] for shape in shapes):
        listed = ", ".join(f"candidate {k}: {shape}" for k, shape in enumerate(shapes))
        raise ValueError(
            f"the candidates of container {name!r} give outputs of different shapes ({listed}); every candidate "
            "of a SearchVariantsContainer must map the same input to an output of the same shape"
        )
