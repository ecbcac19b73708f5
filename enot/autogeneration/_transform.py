"""Transformed copies of one block: pruned inner channels, other depthwise kernels, branch removed."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from enot.autogeneration._analysis import BlockAnalysis, InnerGroup, trace

__all__ = ["CandidateSpec", "build_candidate", "channel_order", "kept_count", "new_kernel_padding", "sliced_norm"]


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate of a block: ``removed`` (branch removed), else inner channels kept per group
    (indices into the trained block's channels, ascending) and new depthwise kernel sizes."""

    removed: bool = False
    keep: tuple[tuple[int, ...], ...] = ()  # one entry per inner group of the analysis
    kernels: tuple[tuple[str, int], ...] = ()  # (depthwise conv name, new kernel size), changed ones only


def kept_count(width_mult: float, size: int) -> int:
    """Channels kept of ``size`` at ``width_mult`` (round half up, at least one)."""
    return max(1, min(size, math.floor(width_mult * size + 0.5)))


@torch.no_grad()
def channel_order(block: nn.Module, group: InnerGroup) -> list[int]:
    """The group's channels from most to least important.

    Importance: the sum of ``|gamma|`` of the group's batch norms (network slimming, Liu et al.
    2017); without batch norm, or on ties, the L1 norm of the filters producing the channel (Li et
    al. 2017, "Pruning Filters for Efficient ConvNets"); then the channel index.
    """
    gamma = torch.zeros(group.size, dtype=torch.float64)
    for name in group.norms:
        norm = block.get_submodule(name)
        if norm.weight is not None:
            gamma += norm.weight.detach().abs().cpu().double()
    l1 = torch.zeros(group.size, dtype=torch.float64)
    for name in group.producers + group.depthwise:
        conv = block.get_submodule(name)
        l1 += conv.weight.detach().abs().flatten(1).sum(1, dtype=torch.float64).cpu()
    primary = gamma if any(block.get_submodule(n).weight is not None for n in group.norms) else l1
    primary_list, l1_list = primary.tolist(), l1.tolist()
    return sorted(range(group.size), key=lambda i: (-primary_list[i], -l1_list[i], i))


def new_kernel_padding(conv: nn.Conv2d, kernel_size: int) -> int | None:
    """Padding that keeps ``conv``'s output shape with a square kernel of ``kernel_size``, or ``None``
    when its kernel cannot be cropped/padded around the centre (not square, even, string padding,
    or cropping below zero padding)."""
    kh, kw = conv.kernel_size
    ph, pw = conv.padding if not isinstance(conv.padding, str) else (None, None)
    dh, dw = conv.dilation
    if kh != kw or kh % 2 == 0 or ph is None or ph != pw or dh != dw:
        return None
    padding = ph + (kernel_size - kh) // 2 * dh
    return padding if padding >= 0 else None


def _resize_kernel(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    old = weight.shape[-1]
    if kernel_size < old:
        start = (old - kernel_size) // 2
        return weight[..., start:start + kernel_size, start:start + kernel_size]
    pad = (kernel_size - old) // 2
    return torch.nn.functional.pad(weight, (pad, pad, pad, pad))


def _index(keep: Sequence[int] | None, device: torch.device) -> torch.Tensor | None:
    return None if keep is None else torch.tensor(list(keep), dtype=torch.long, device=device)


@torch.no_grad()
def _sliced_conv(
    conv: nn.Conv2d, out_keep: Sequence[int] | None, in_keep: Sequence[int] | None,
    depthwise_keep: Sequence[int] | None, kernel_size: int | None,
) -> nn.Conv2d:
    new = copy.deepcopy(conv)
    weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
    out_idx = _index(depthwise_keep if depthwise_keep is not None else out_keep, weight.device)
    if out_idx is not None:
        weight = weight.index_select(0, out_idx)
        bias = None if bias is None else bias.index_select(0, out_idx)
        new.out_channels = len(out_idx)
    if depthwise_keep is not None:
        new.in_channels = new.groups = len(depthwise_keep)
    elif in_keep is not None:
        weight = weight.index_select(1, _index(in_keep, weight.device))
        new.in_channels = len(in_keep)
    if kernel_size is not None and kernel_size != conv.kernel_size[0]:
        padding = new_kernel_padding(conv, kernel_size)
        weight = _resize_kernel(weight, kernel_size)
        new.kernel_size = (kernel_size, kernel_size)
        new.padding = (padding, padding)
        new._reversed_padding_repeated_twice = [padding] * 4
    new.weight = nn.Parameter(weight.clone(), requires_grad=conv.weight.requires_grad)
    if bias is not None:
        new.bias = nn.Parameter(bias.clone(), requires_grad=conv.bias.requires_grad)
    return new


@torch.no_grad()
def sliced_norm(norm: nn.BatchNorm2d, keep: Sequence[int]) -> nn.BatchNorm2d:
    new = copy.deepcopy(norm)
    tensors = [*norm.parameters(), *norm.buffers()]
    idx = _index(keep, tensors[0].device if tensors else torch.device("cpu"))
    new.num_features = len(keep)
    if norm.weight is not None:
        new.weight = nn.Parameter(norm.weight.detach().index_select(0, idx).clone(), requires_grad=norm.weight.requires_grad)
        new.bias = nn.Parameter(norm.bias.detach().index_select(0, idx).clone(), requires_grad=norm.bias.requires_grad)
    if norm.running_mean is not None:
        new.running_mean = norm.running_mean.index_select(0, idx).clone()
        new.running_var = norm.running_var.index_select(0, idx).clone()
    return new


def build_candidate(block: nn.Module, analysis: BlockAnalysis, spec: CandidateSpec) -> nn.Module:
    """A new module computing the candidate ``spec`` of ``block`` (``block`` is not modified).

    A pruned or re-kernelled candidate is a copy of ``block`` (same class, same forward) with its
    convolutions and batch norms replaced by sliced copies; a removed one is the traced forward with
    the residual addition replaced by the input (what remains after it, e.g. a ReLU, is kept), or
    ``nn.Identity()`` when nothing remains.
    """
    if spec.removed:
        return _without_branch(block, analysis)
    out_keep: dict[str, tuple[int, ...]] = {}
    in_keep: dict[str, tuple[int, ...]] = {}
    dw_keep: dict[str, tuple[int, ...]] = {}
    norm_keep: dict[str, tuple[int, ...]] = {}
    for group, keep in zip(analysis.groups, spec.keep):
        if len(keep) == group.size:
            continue
        for name in group.producers:
            out_keep[name] = keep
        for name in group.consumers:
            in_keep[name] = keep
        for name in group.depthwise:
            dw_keep[name] = keep
        for name in group.norms:
            norm_keep[name] = keep
    kernels = dict(spec.kernels)
    # The sliced layers go into the deep copy's memo: the copy uses them in place of the originals,
    # and the originals' weights are never copied.
    replacements: dict[int, nn.Module] = {}
    for name in sorted(set(out_keep) | set(in_keep) | set(dw_keep) | set(kernels)):
        conv = block.get_submodule(name)
        replacements[id(conv)] = _sliced_conv(conv, out_keep.get(name), in_keep.get(name), dw_keep.get(name), kernels.get(name))
    for name, keep in norm_keep.items():
        norm = block.get_submodule(name)
        replacements[id(norm)] = sliced_norm(norm, keep)
    candidate = copy.deepcopy(block, memo=dict(replacements))
    return candidate


def _without_branch(block: nn.Module, analysis: BlockAnalysis) -> nn.Module:
    graph = trace(block)
    placeholder = next(n for n in graph.nodes if n.op == "placeholder")
    add = next(n for n in graph.nodes if n.name == analysis.residual_add)
    add.replace_all_uses_with(placeholder)
    graph.erase_node(add)
    graph._tracer_cls = None  # else the GraphModule pickles a reference to enot's tracer class
    # The GraphModule refers to ``block``'s own layers until the branch is gone; then it is copied.
    module = fx.GraphModule(block, graph)
    module.graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    for node in module.graph.nodes:
        node.type = None  # string annotations (from __future__ import annotations) would not pickle
    module.recompile()
    if all(n.op in ("placeholder", "output") for n in module.graph.nodes):
        return nn.Identity()
    return copy.deepcopy(module)
