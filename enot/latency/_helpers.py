"""Helpers for modules that state their own latency (ENOT 2.x names): `LatencyMixin`, `conv_mac_count`,
and whole-model MAC counters kept under ENOT's names (`MacCalculatorThop`, `MacCalculatorPthflops`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optree
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from enot.latency._initialize import _inference

__all__ = ["LatencyMixin", "MacCalculatorPthflops", "MacCalculatorThop", "conv_mac_count"]


class LatencyMixin:
    """Mixin for an ``nn.Module`` that states its own latency instead of being measured.

    Define ``latency_<type>(self, inputs) -> float`` (e.g. ``latency_mmac``); ``inputs`` is the tuple
    of the module's positional arguments on the shapes that reach it.
    :func:`enot.latency.initialize_latency` then uses that figure for the module (and for
    everything inside it) wherever it appears: as a candidate, inside one, or outside containers.
    Types the module defines no method for are measured as usual.  For ``'mmac'`` return millions
    of MACs per sample (the batch size divides out, as in the built-in counter).
    """

    def stated_latency_types(self) -> list[str]:
        """The latency types this module states itself (sorted), from its ``latency_<type>`` methods."""
        return sorted(
            name[len("latency_"):] for name in dir(type(self))
            if name.startswith("latency_") and callable(getattr(type(self), name, None))
        )


def _pair(name: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise ValueError(f"conv_mac_count: {name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_mac_count(
    spatial_size: int | tuple[int, int],
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    in_channels: int = 1,
    padding: int | tuple[int, int] = 0,
    out_channels: int = 1,
    groups: int = 1,
) -> tuple[float, tuple[int, int]]:
    """Millions of multiply-accumulates of one ``nn.Conv2d`` on one sample, and its output size.

    ``out = (size + 2 * padding - kernel) // stride + 1`` per dimension;
    ``MMAC = h_out * w_out * kh * kw * (in_channels / groups) * out_channels / 1e6`` (bias not counted,
    as PyTorch's FLOP counter does).

    Returns:
        ``(mmac, (h_out, w_out))``.

    Raises:
        ValueError: On non-positive sizes, channels not divisible by ``groups``, or an empty output.
    """
    h, w = _pair("spatial_size", spatial_size)
    kh, kw = _pair("kernel_size", kernel_size)
    sh, sw = _pair("stride", stride)
    ph, pw = _pair("padding", padding)
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"conv_mac_count: {name} must be a positive int, got {value!r}")
    if min(h, w, kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(
            f"conv_mac_count: sizes, kernel and stride must be positive and padding >= 0, got spatial_size="
            f"{spatial_size!r}, kernel_size={kernel_size!r}, stride={stride!r}, padding={padding!r}"
        )
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"conv_mac_count: groups={groups} must divide in_channels={in_channels} and "
                         f"out_channels={out_channels}")
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"conv_mac_count: kernel {kh}x{kw} does not fit the padded input {h + 2 * ph}x{w + 2 * pw}")
    return h_out * w_out * kh * kw * (in_channels // groups) * out_channels / 1e6, (h_out, w_out)


class MacCalculatorThop:
    """Millions of MACs per sample of a whole model, counted by PyTorch's FLOP counter.

    The name is ENOT 2.x's; no ``thop`` is needed: ``torch.utils.flop_counter`` counts matrix
    products and convolutions of any module (``MACs = FLOPs / 2``), the same count as the ``'mmac'``
    latency type.  The model runs once in eval mode without gradients; its training flags are restored.
    """

    def calculate(self, model: nn.Module, inputs: Any, keyword_inputs: Mapping[str, Any] | None = None) -> float:
        """MMACs per sample of ``model(*inputs, **keyword_inputs)``.

        Args:
            model: Any ``nn.Module`` (a search space counts its selected architecture).
            inputs: A tensor or a tuple/list of positional inputs; dim 0 of the first tensor is the batch.
            keyword_inputs: Keyword inputs of the model.

        Raises:
            TypeError: If ``model`` is not an ``nn.Module``.
            ValueError: If no input tensor gives a batch size.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__}.calculate expects an nn.Module, got {type(model).__name__}")
        args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        kwargs = dict(keyword_inputs or {})
        batch = next((x.shape[0] for x in optree.tree_leaves((args, kwargs))
                      if isinstance(x, torch.Tensor) and x.ndim >= 1), None)
        if not batch:
            raise ValueError(f"{type(self).__name__}.calculate: no input tensor with a batch dimension in {inputs!r}")
        with _inference(model), FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
        return counter.get_total_flops() / 2 / 1e6 / batch


class MacCalculatorPthflops(MacCalculatorThop):
    """The same count as :class:`MacCalculatorThop` under ENOT's other name (no ``pthflops`` needed)."""
