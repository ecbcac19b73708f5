"""What a block's traced forward allows: inner channel groups to prune, depthwise convs, a residual add.

A block is traced with ``torch.fx`` (standard ``torch.nn`` layers and parameterless modules stay
leaves).  Every tensor's channel dimension (dim 1) gets a *channel group*: tensors whose channels
must be pruned together (a convolution's output, the batch norm and activations after it, the
depthwise convolution on it, the tensor an elementwise product or sum merges it with).  A group is
*inner* when it touches neither the block's input nor its output and only layers that can be
sliced along it touch it; anything else that touches a group (an op this module does not know, a
``view``, a ``Linear``, a parameter read in ``forward``, a layer called twice) freezes it.
Unknown ops therefore make the analysis find less, never something wrong.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["BlockAnalysis", "BlockTracer", "InnerGroup", "analyse_block", "trace"]

_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.GELU,
    nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Hardtanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout,
)
_POOL_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_ELEMENTWISE_FUNCTIONS = {
    torch.relu, torch.relu_, F.relu, F.relu6, F.hardtanh, F.silu, F.hardswish, F.hardsigmoid,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.gelu, F.leaky_relu, F.elu, F.mish, F.dropout,
    F.dropout2d, torch.clamp,
}
_ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone", "clamp"}
_POOL_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.avg_pool2d, F.max_pool2d}
_BINARY_FUNCTIONS = {
    operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.isub,
    torch.add, torch.mul, torch.sub,
}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "sub_"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_"}
_SPATIAL_MEAN_METHODS = {"mean", "amax"}


def _is_torch_nn(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn")


class BlockTracer(fx.Tracer):
    """``torch.fx`` tracer whose leaves are ``torch.nn`` layers and parameterless modules without
    children (stochastic depth, drop path, custom activations): tracing never enters their forward,
    which may depend on ``self.training``."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        if _is_torch_nn(m) or isinstance(m, nn.BatchNorm2d):  # subclasses: see _slices_like_batch_norm
            return True
        return not m._modules and next(m.parameters(recurse=False), None) is None


def trace(module: nn.Module) -> fx.Graph:
    """The block's graph (raises whatever ``torch.fx`` raises on untraceable code)."""
    return BlockTracer().trace(module)


def _is_channelwise(module: nn.Module) -> bool:
    """Whether a parameterless module acts on each channel independently and identically (probed in
    eval mode on a copy): then pruning channels around it is safe."""
    probe = copy.deepcopy(module).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 5, generator=g)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    bumped = x.clone()
    bumped[:, 0] += 1.0
    try:
        with torch.no_grad():
            y, y_perm, y_bumped = probe(x), probe(x[:, perm]), probe(bumped)
    except Exception:  # noqa: BLE001 - anything that fails on a plain 4-D tensor is not channelwise
        return False
    if not all(isinstance(t, torch.Tensor) and t.shape == x.shape for t in (y, y_perm, y_bumped)):
        return False
    return bool(torch.allclose(y_perm, y[:, perm]) and torch.allclose(y_bumped[:, 1:], y[:, 1:]))


def _slices_like_batch_norm(norm: nn.BatchNorm2d) -> bool:
    """Whether a ``BatchNorm2d`` subclass (e.g. timm's ``BatchNormAct2d``: batch norm, then an
    activation) computes, with its per-channel tensors sliced, the same channels of its output
    (probed in eval mode on a copy)."""
    from enot.autogeneration._transform import sliced_norm  # local: _transform imports this module

    if norm.num_features < 2:
        return False
    probe = copy.deepcopy(norm).eval()
    tensors = [*probe.parameters(), *probe.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, norm.num_features, 3, 3, generator=g).to(device)
    keep = list(range(0, norm.num_features, 2))
    try:
        with torch.no_grad():
            whole = probe(x)[:, keep]
            part = sliced_norm(probe, keep).eval()(x[:, keep])
    except Exception:  # noqa: BLE001 - a subclass that cannot be sliced this way is not a batch norm here
        return False
    return isinstance(part, torch.Tensor) and part.shape == whole.shape and bool(torch.allclose(part, whole, atol=1e-6))


class _Groups:
    """Union-find over channel groups with a size (``None`` until a layer states it) and a frozen flag."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int | None] = []
        self.frozen: list[bool] = []

    def new(self, size: int | None = None, frozen: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.frozen.append(frozen)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def freeze(self, g: int) -> None:
        self.frozen[self.find(g)] = True

    def set_size(self, g: int, size: int) -> None:
        r = self.find(g)
        if self.size[r] is None:
            self.size[r] = size
        elif self.size[r] != size:  # inconsistent with what we inferred: do not touch it
            self.frozen[r] = True

    def union(self, a: int, b: int) -> int | None:
        """Merges two groups; groups of different known sizes (broadcasting) are frozen instead."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        sa, sb = self.size[ra], self.size[rb]
        if sa is not None and sb is not None and sa != sb:
            self.frozen[ra] = self.frozen[rb] = True
            return None
        self.parent[rb] = ra
        self.size[ra] = sa if sa is not None else sb
        self.frozen[ra] = self.frozen[ra] or self.frozen[rb]
        return ra


@dataclass
class InnerGroup:
    """One inner channel group of a block: the layers to slice along it."""

    size: int
    producers: list[str] = field(default_factory=list)  # convs whose output channels are the group
    consumers: list[str] = field(default_factory=list)  # convs whose input channels are the group
    depthwise: list[str] = field(default_factory=list)  # depthwise convs on the group
    norms: list[str] = field(default_factory=list)  # batch norms on the group


@dataclass
class BlockAnalysis:
    """What :func:`analyse_block` found (module names are relative to the block)."""

    error: str | None = None  # why the module is not analysable (then nothing else is set)
    groups: list[InnerGroup] = field(default_factory=list)
    depthwise: list[str] = field(default_factory=list)  # every depthwise conv (for kernel changes)
    residual_add: str | None = None  # name of the node adding the block's input to a branch

    @property
    def transformable(self) -> bool:
        return self.error is None and (bool(self.groups) or self.residual_add is not None)


def _node_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _spatial_dims_only(node: fx.Node) -> bool:
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if isinstance(dims, int):
        dims = (dims,)
    return isinstance(dims, (tuple, list)) and bool(dims) and all(isinstance(d, int) and d >= 2 for d in dims)


def analyse_block(block: nn.Module) -> BlockAnalysis:
    """Traces ``block`` and finds its inner channel groups, depthwise convs and residual add."""
    if BlockTracer().is_leaf_module(block, ""):
        return BlockAnalysis(error="a single layer, not a block")
    try:
        graph = trace(block)
    except Exception as error:  # noqa: BLE001 - any tracing failure means "not a block we can read"
        first_line = (str(error).strip().splitlines() or [""])[0]
        return BlockAnalysis(error=f"torch.fx cannot trace it ({type(error).__name__}: {first_line[:120]})")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return BlockAnalysis(error=f"its forward takes {len(placeholders)} inputs, not one tensor")
    output = next(n for n in graph.nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):
        return BlockAnalysis(error="its forward does not return one tensor")

    modules = dict(block.named_modules())
    groups = _Groups()
    group_of: dict[fx.Node, int] = {}
    roles: dict[str, list[tuple[str, int]]] = {}  # module name -> [(role, group)]
    uses: dict[str, int] = {}

    def opaque(node: fx.Node) -> None:
        for arg in _node_args(node):
            if arg in group_of:
                groups.freeze(group_of[arg])
        group_of[node] = groups.new(frozen=True)

    for node in graph.nodes:
        args = _node_args(node)
        if node.op == "placeholder":
            group_of[node] = groups.new(frozen=True)
        elif node.op == "output":
            groups.freeze(group_of[node.args[0]])
        elif node.op == "get_attr":
            group_of[node] = groups.new(frozen=True)
        elif node.op == "call_module":
            module = modules[node.target]
            uses[node.target] = uses.get(node.target, 0) + 1
            if len(args) != 1 or node.args[0] is not args[0] or node.kwargs:
                opaque(node)
                continue
            g_in = group_of[args[0]]
            kind = type(module)
            if kind is nn.Conv2d:
                groups.set_size(g_in, module.in_channels)
                if module.groups == 1:
                    g_out = groups.new(size=module.out_channels)
                    roles.setdefault(node.target, []).extend([("consumer", g_in), ("producer", g_out)])
                    group_of[node] = g_out
                elif _is_depthwise(module):
                    roles.setdefault(node.target, []).append(("depthwise", g_in))
                    group_of[node] = g_in
                else:
                    opaque(node)
            elif kind is nn.BatchNorm2d or (isinstance(module, nn.BatchNorm2d) and _slices_like_batch_norm(module)):
                groups.set_size(g_in, module.num_features)
                roles.setdefault(node.target, []).append(("norm", g_in))
                group_of[node] = g_in
            elif kind in _ELEMENTWISE_MODULES or kind in _POOL_MODULES:
                group_of[node] = g_in
            elif not _is_torch_nn(module) and next(module.parameters(), None) is None and _is_channelwise(module):
                group_of[node] = g_in
            else:
                opaque(node)
        elif node.op in ("call_function", "call_method"):
            target = node.target
            is_fn = node.op == "call_function"
            if (is_fn and target in _BINARY_FUNCTIONS) or (not is_fn and target in _BINARY_METHODS):
                known = [a for a in args if a in group_of]
                if len(known) != len(args) or not args or len(args) > 2 or set(node.kwargs) - {"alpha"}:
                    opaque(node)
                    continue
                merged = group_of[known[0]]
                for other in known[1:]:
                    merged = groups.union(merged, group_of[other])
                    if merged is None:
                        break
                group_of[node] = groups.new(frozen=True) if merged is None else merged
            elif (
                (is_fn and (target in _ELEMENTWISE_FUNCTIONS or target in _POOL_FUNCTIONS))
                or (not is_fn and target in _ELEMENTWISE_METHODS)
                or (target in _SPATIAL_MEAN_METHODS and not is_fn and _spatial_dims_only(node))
                or (is_fn and target is torch.mean and _spatial_dims_only(node))
            ) and len(args) == 1 and node.args and node.args[0] is args[0]:
                group_of[node] = group_of[args[0]]
            else:
                opaque(node)
        else:
            opaque(node)

    # A layer called more than once must keep all its channels.
    for name, count in uses.items():
        if count > 1:
            for _, g in roles.get(name, []):
                groups.freeze(g)

    inner: dict[int, InnerGroup] = {}
    for name, entries in roles.items():
        for role, g in entries:
            root = groups.find(g)
            if groups.frozen[root] or groups.size[root] is None:
                continue
            group = inner.setdefault(root, InnerGroup(size=groups.size[root]))
            {"producer": group.producers, "consumer": group.consumers, "depthwise": group.depthwise,
             "norm": group.norms}[role].append(name)
    inner_groups = [g for _, g in sorted(inner.items()) if g.producers]

    depthwise = [
        node.target for node in graph.nodes
        if node.op == "call_module" and type(modules[node.target]) is nn.Conv2d and _is_depthwise(modules[node.target])
    ]
    return BlockAnalysis(
        groups=inner_groups,
        depthwise=list(dict.fromkeys(depthwise)),
        residual_add=_residual_add(output, placeholders[0], modules),
    )


def _residual_add(output: fx.Node, placeholder: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The add of the block's input to a branch that every path to the output passes through
    (only elementwise single-input ops after it), or ``None``."""
    node = output.args[0]
    while isinstance(node, fx.Node):
        is_fn = node.op == "call_function"
        if (is_fn and node.target in _ADD_FUNCTIONS) or (node.op == "call_method" and node.target in _ADD_METHODS):
            args = list(node.args) + list(node.kwargs.values())
            if len(node.args) == 2 and not node.kwargs and placeholder in args and all(isinstance(a, fx.Node) for a in args):
                branch = args[1] if args[0] is placeholder else args[0]
                if branch is not placeholder and len(node.users) == 1:
                    return node.name
            return None
        if len(node.users) != 1 or len(_node_args(node)) != 1 or node.args[:1] != (_node_args(node)[0],):
            return None
        if node.op == "call_module":
            module = modules[node.target]
            if type(module) not in _ELEMENTWISE_MODULES:
                return None
        elif not ((is_fn and node.target in _ELEMENTWISE_FUNCTIONS) or
                  (node.op == "call_method" and node.target in _ELEMENTWISE_METHODS)):
            return None
        node = node.args[0]
    return None
