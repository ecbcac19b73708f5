"""Op strings of the model builders: ``'Name_k=3_a=relu'`` -> a module, through a registry of op classes.

``register_searchable_op(name, short_args)`` adds a class; ``build_searchable_op`` parses a string and
builds it with ``in_channels``, ``out_channels`` and ``stride`` plus the arguments the string gives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from torch import nn

__all__ = ["build_searchable_op", "register_searchable_op", "registered_ops"]

_BUILDER_ARGS = ("in_channels", "out_channels", "stride")


class _Entry(NamedTuple):
    cls: type[nn.Module]
    short_args: dict[str, tuple[str, Callable[[str], Any]]]


_REGISTRY: dict[str, _Entry] = {}


def registered_ops() -> list[str]:
    """The registered op names (sorted), each usable as ``'<name>_<short>=<value>_...'``."""
    return sorted(_REGISTRY)


def _op_format(name: str) -> str:
    entry = _REGISTRY[name]
    args = "".join(f"_{short}=<{long}>" for short, (long, _) in entry.short_args.items())
    return f"'{name}{args}'"


def _check_short_args(name: str, cls: type, short_args: Any) -> dict[str, tuple[str, Callable[[str], Any]]]:
    if short_args is None:
        short_args = {}
    if not isinstance(short_args, Mapping):
        raise TypeError(f"register_searchable_op({name!r}): short_args must be a dict, got {type(short_args).__name__}")
    parameters = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    missing = [arg for arg in _BUILDER_ARGS if arg not in parameters and not takes_any]
    if missing:
        raise TypeError(
            f"register_searchable_op({name!r}): {cls.__name__}.__init__ must accept {list(_BUILDER_ARGS)} "
            f"(the builders pass them by keyword); missing {missing}"
        )
    checked = {}
    for short, spec in short_args.items():
        if not isinstance(short, str) or not short or "_" in short or "=" in short:
            raise ValueError(f"register_searchable_op({name!r}): short argument names must be non-empty strings "
                             f"without '_' or '=', got {short!r}")
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and callable(spec[1])):
            raise TypeError(f"register_searchable_op({name!r}): short_args[{short!r}] must be a pair "
                            f"(argument_name, parser), got {spec!r}")
        if spec[0] not in parameters and not takes_any:
            raise ValueError(f"register_searchable_op({name!r}): short_args[{short!r}] names {spec[0]!r}, "
                             f"which {cls.__name__}.__init__ does not accept")
        if spec[0] in _BUILDER_ARGS:
            raise ValueError(f"register_searchable_op({name!r}): {spec[0]!r} is set by the builder, "
                             "not by the op string")
        checked[short] = spec
    return checked


def register_searchable_op(
    name: str, short_args: Mapping[str, tuple[str, Callable[[str], Any]]] | None = None
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: makes op strings ``'<name>_<short>=<value>_...'`` build this class.

    The model builders (``build_mobilenet``, ``build_simple_block_model``) call
    ``cls(in_channels=..., out_channels=..., stride=..., **parsed)`` where ``parsed`` maps each
    ``short=value`` of the string through ``short_args[short] = (argument_name, parser)``, e.g.
    ``{'k': ('kernel_size', int)}``; arguments the string omits take the class's defaults.

    Args:
        name: The op name, without ``'_'`` or ``'='``.  Registering a name again is allowed only
            for a class of the same module and qualified name (a re-run notebook cell).
        short_args: Short argument names to ``(constructor argument, parser of the string value)``.

    Returns:
        The decorator (it returns the class unchanged).

    Raises:
        ValueError: On a bad or taken name, or short arguments the constructor does not accept.
        TypeError: If the decorated object is not an ``nn.Module`` subclass.
    """
    if not isinstance(name, str) or not name or "_" in name or "=" in name:
        raise ValueError(f"register_searchable_op: name must be a non-empty string without '_' or '=', got {name!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_searchable_op({name!r}) decorates nn.Module subclasses, got {cls!r}")
        checked = _check_short_args(name, cls, short_args)
        taken = _REGISTRY.get(name)
        if taken is not None and (taken.cls.__module__, taken.cls.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(
                f"register_searchable_op: op name {name!r} is already taken by "
                f"{taken.cls.__module__}.{taken.cls.__qualname__}"
            )
        _REGISTRY[name] = _Entry(cls, checked)
        return cls

    return decorator


def _split(op: str) -> tuple[str, list[str]]:
    """``'MyOp_k=3_a=hard_swish'`` -> ``('MyOp', ['k=3', 'a=hard_swish'])`` (a piece without ``=``
    continues the previous value)."""
    name, *pieces = op.split("_")
    args: list[str] = []
    for piece in pieces:
        if "=" in piece or not args:
            args.append(piece)
        else:
            args[-1] += "_" + piece
    return name, args


def build_searchable_op(op: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Builds the module an op string names (see :func:`register_searchable_op`).

    Raises:
        TypeError: If ``op`` is not a string.
        ValueError: On an unknown op name, an unknown or repeated short argument, or a value its
            parser rejects; the message lists the allowed formats.
    """
    if not isinstance(op, str):
        raise TypeError(f"search op must be a string, got {op!r}")
    name, pieces = _split(op)
    entry = _REGISTRY.get(name)
    if entry is None:
        formats = ", ".join(_op_format(n) for n in registered_ops())
        raise ValueError(f"unknown search op {op!r}; allowed formats: {formats} "
                         "(register your own with enot.models.register_searchable_op)")
    kwargs: dict[str, Any] = {}
    for piece in pieces:
        short, sep, value = piece.partition("=")
        if not sep or short not in entry.short_args:
            raise ValueError(f"search op {op!r}: unknown argument {piece!r}; {name} takes {_op_format(name)}")
        argument, parser = entry.short_args[short]
        if argument in kwargs:
            raise ValueError(f"search op {op!r}: argument {short!r} given twice")
        try:
            kwargs[argument] = parser(value)
        except Exception as error:  # noqa: BLE001 - any parser failure is the string's fault
            raise ValueError(f"search op {op!r}: cannot parse {short}={value!r} ({argument}): {error!r}") from None
    return entry.cls(in_channels=in_channels, out_channels=out_channels, stride=stride, **kwargs)
