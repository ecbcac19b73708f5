"""`initialize_latency`: measure every candidate of a search space on the shapes that reach it.

One recording run of the search space (eval mode, no grad, its selected architecture) stores the
inputs and outputs of every container call.  Each candidate is then measured on the recorded
inputs of its container, and the constant part is the whole model measured with every container
replaced by a replay of its recorded output.  A module that defines ``latency_<type>(self, inputs)``
is likewise replayed and its own figure added (``inputs``: the tuple of its positional arguments).
"""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import optree
import torch
from torch import nn

from enot.functional.support import check_int, check_latency_fits, replaced_forwards
from enot.latency._calculators import LatencyCalculator, get_calculator
from enot.latency._container import SearchSpaceLatencyContainer
from enot.models import SearchSpaceModel

__all__ = ["initialize_latency"]


class _Call(NamedTuple):
    args: tuple
    kwargs: dict
    output: Any


def _clone(tree: Any) -> Any:
    return optree.tree_map(lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x, tree)


def _first_batch_size(tree: Any) -> int | None:
    for leaf in optree.tree_leaves(tree):
        if isinstance(leaf, torch.Tensor) and leaf.ndim >= 1:
            return int(leaf.shape[0])
    return None


@contextlib.contextmanager
def _inference(module: nn.Module) -> Iterator[None]:
    """Eval mode and no grad inside; every module's training flag restored after."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def _recording(modules: Sequence[nn.Module], calls: dict[nn.Module, list[_Call]]) -> Iterator[None]:
    """Records the outermost calls of ``modules`` (calls nested inside another recorded call are not)."""
    depth = [0]
    pending: dict[nn.Module, list[tuple[tuple, dict, bool]]] = {m: [] for m in modules}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        pending[module].append((_clone(args), _clone(kwargs), depth[0] == 0))
        depth[0] += 1

    def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        depth[0] -= 1
        call_args, call_kwargs, outermost = pending[module].pop()
        if outermost:
            calls.setdefault(module, []).append(_Call(call_args, call_kwargs, _clone(output)))

    handles = []
    try:
        for m in modules:
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(m.register_forward_hook(post, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _replaying(replays: Mapping[nn.Module, list[Any]], queues: dict[nn.Module, deque]):  # noqa: ANN202
    """Each module in ``replays`` returns the next output from ``queues[module]`` instead of computing."""

    def next_output(module: nn.Module) -> Any:
        queue = queues[module]
        if not queue:
            raise RuntimeError(
                f"{type(module).__name__} ran more often than during the recording run; "
                "latency measurement needs a model whose control flow does not depend on the data"
            )
        return queue.popleft()

    return replaced_forwards({m: (lambda _m=m: next_output(_m)) for m in replays})


def _override(module: nn.Module, latency_type: str) -> Any:
    method = getattr(module, f"latency_{latency_type}", None)
    return method if callable(method) else None


def _figure(module: nn.Module, latency_type: str, args: tuple) -> float:
    value = _override(module, latency_type)(args)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ValueError(
            f"{type(module).__name__}.latency_{latency_type} returned {value!r}; it must return a finite number >= 0"
        )
    return float(value)


def _measure(
    calculator: LatencyCalculator,
    latency_type: str,
    module: nn.Module,
    args: tuple,
    kwargs: dict,
    fixed: Mapping[nn.Module, list[Any]],
    *,
    batch_size: int,
    device: torch.device,
) -> float:
    """Latency of ``module(*args, **kwargs)`` with ``fixed`` modules replaying their outputs."""
    if _override(module, latency_type) is not None:
        return _figure(module, latency_type, args)
    overridden = [
        m for m in module.modules() if m is not module and m not in fixed and _override(m, latency_type) is not None
    ]
    figures = 0.0
    replays: dict[nn.Module, list[Any]] = dict(fixed)
    if overridden:
        calls: dict[nn.Module, list[_Call]] = {}
        record_queues = {m: deque(_clone(outputs)) for m, outputs in fixed.items()}
        with _replaying(fixed, record_queues), _recording(overridden, calls):
            module(*_clone(args), **_clone(kwargs))
        for m, recorded in calls.items():
            figures += sum(_figure(m, latency_type, call.args) for call in recorded)
            replays[m] = [call.output for call in recorded]
    queues: dict[nn.Module, deque] = {}

    def prepare() -> Any:
        call_args, call_kwargs = _clone(args), _clone(kwargs)
        for m, outputs in replays.items():
            queues[m] = deque(_clone(outputs))
        return lambda: module(*call_args, **call_kwargs)

    with _replaying(replays, queues):
        measured = calculator.measure(prepare, batch_size=batch_size, device=device)
    return measured + figures


def _batch_size(batch_size: Any, args: tuple, kwargs: dict) -> int:
    if batch_size is None:
        batch_size = _first_batch_size((args, kwargs))
        if batch_size is None:
            raise ValueError("initialize_latency cannot infer the batch size from inputs; pass batch_size=")
    return check_int(batch_size, "batch_size", minimum=1)


def _record_containers(search_space: SearchSpaceModel, args: tuple, kwargs: dict) -> dict[nn.Module, list[_Call]]:
    """The calls of every container in one run of the model (inside :func:`_inference`)."""
    containers = search_space.search_variants_containers
    calls: dict[nn.Module, list[_Call]] = {}
    with _recording(containers, calls):
        search_space.original_model(*_clone(args), **_clone(kwargs))
    for c, container in enumerate(containers):
        if container not in calls:
            raise ValueError(
                f"container {search_space.layout.container_names[c]!r} was not reached when running the search "
                "space on the inputs; every container must run in the forward pass"
            )
    return calls


def initialize_latency(
    latency_type: str,
    search_space: SearchSpaceModel,
    inputs: Any,
    keyword_inputs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> SearchSpaceLatencyContainer:
    """Measures the latency of every candidate of every container, and the constant part.

    The search space runs once on ``inputs`` with its selected architecture (in eval mode, without
    gradients; training flags and the architecture are restored), recording the inputs that reach
    every container; each candidate is measured on those, so candidates see the real shapes.

    Args:
        latency_type: One of :func:`available_calculators` (``'mmac'``: millions of MACs per sample;
            ``'time'``: milliseconds for this batch) or an alias (``'mmac.thop'``, ...).
        search_space: The search space.
        inputs: Positional inputs of the model: a tuple (or list) of them, or a single tensor.
        keyword_inputs: Keyword inputs of the model.
        **kwargs: ``batch_size`` (default: dim 0 of the first input tensor) and the calculator's
            options (``'time'``: ``warmup``, ``repeats``, ``num_threads``).

    Returns:
        The :class:`SearchSpaceLatencyContainer`, also applied to ``search_space``.

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpaceModel``.
        ValueError: On an unknown type or option, a container the run does not reach, a
            container nested in another, or a batch size that cannot be inferred.
    """
    if not isinstance(search_space, SearchSpaceModel):
        raise TypeError(f"initialize_latency expects a SearchSpaceModel, got {type(search_space).__name__}")
    batch_size = kwargs.pop("batch_size", None)
    name, calculator = get_calculator(latency_type, **kwargs)
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    keyword_inputs = dict(keyword_inputs or {})
    batch_size = _batch_size(batch_size, args, keyword_inputs)
    check_latency_fits(search_space.layout)  # nested containers: the error apply_latency_container gives
    containers = search_space.search_variants_containers
    param = next(search_space.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    measure = functools.partial(_measure, calculator, name, batch_size=batch_size, device=device)
    with _inference(search_space):
        calls = _record_containers(search_space, args, keyword_inputs)
        fixed = {container: [call.output for call in calls[container]] for container in containers}
        constant = measure(search_space.original_model, args, keyword_inputs, fixed)
        operations = [
            [sum(measure(candidate, call.args, call.kwargs, {}) for call in calls[container])
             for candidate in container.search_variants]
            for container in containers
        ]
    input_shapes = [
        [list(x.shape) for x in optree.tree_leaves(calls[container][0].args) if isinstance(x, torch.Tensor)]
        for container in containers
    ]
    metadata = {
        **calculator.metadata(),
        "batch_size": batch_size,
        "device": str(device),
        "container_input_shapes": input_shapes,
    }
    result = SearchSpaceLatencyContainer(name, max(constant, 0.0), operations, metadata=metadata)
    search_space.apply_latency_container(result)
    return result
