"""`make_portable`: a model with no `enot` class left in it."""

from __future__ import annotations

import copy

import torch.fx
from torch import nn

from enot.models._container import SearchVariantsContainer

__all__ = ["is_enot_module", "make_portable"]


def is_enot_module(module: nn.Module) -> bool:
    """Whether ``module``'s class is defined in the ``enot`` package."""
    return type(module).__module__.split(".")[0] == "enot"


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, SearchVariantsContainer) or (
        is_enot_module(module) and any(isinstance(m, SearchVariantsContainer) for m in module.modules())
    ):
        # A container, or an enot module holding one (a SearchSpaceModel): torch.fx would trace one
        # candidate and silently drop the choice.
        raise TypeError(
            f"make_portable got a {type(module).__name__}, which still holds a choice; extract one "
            "architecture first with search_space.get_network_by_indexes(architecture)"
        )
    if is_enot_module(module):
        # torch.fx inlines the enot class's forward into a GraphModule of plain torch modules.
        return _without_string_annotations(torch.fx.symbolic_trace(module))
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = _convert(child)
    return module


def _without_string_annotations(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drops type annotations that are strings (``from __future__ import annotations``): torch.fx
    keeps them as node types, and pickling the GraphModule then fails on them."""
    changed = False
    for node in graph_module.graph.nodes:
        if isinstance(node.type, str):
            node.type = None
            changed = True
    if changed:
        graph_module.recompile()
    return graph_module


def make_portable(model: nn.Module) -> nn.Module:
    """Returns a copy of ``model`` in which every ``enot`` module is replaced by an equivalent
    ``torch.fx.GraphModule`` of plain PyTorch modules, so that ``torch.save`` output loads where
    ``enot`` is not installed.  Parameter and buffer names are kept.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or still contains a search space or container.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_portable expects an nn.Module, got {type(model).__name__}")
    return _convert(copy.deepcopy(model))
