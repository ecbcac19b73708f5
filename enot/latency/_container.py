"""`SearchSpaceLatencyContainer`: the latency table of a search space, with a JSON file format."""

from __future__ import annotations

import json
import math
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import enot.functional as ef
from enot.functional import support
from enot.utils import atomic_write

__all__ = ["SearchSpaceLatencyContainer"]

FILE_FORMAT = "enot.latency"
FILE_VERSION = 1


class _ClassOrInstanceMethod:
    """Descriptor: ``Cls.f(...)`` gets the class, ``obj.f(...)`` gets the instance."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.__doc__ = function.__doc__

    def __get__(self, instance: Any, owner: type) -> Any:
        target = owner if instance is None else instance

        def bound(*args: Any, **kwargs: Any) -> Any:
            return self.function(target, *args, **kwargs)

        bound.__doc__ = self.function.__doc__
        bound.__name__ = self.function.__name__
        return bound


def _check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        raise TypeError(f"{where} is {value!r}; latencies must be numbers")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where} is {number!r}; latencies must be finite and >= 0")
    return number


def _check_latency_type(latency_type: Any) -> str:
    if not isinstance(latency_type, str) or not latency_type:
        raise TypeError(f"latency_type must be a non-empty string, got {latency_type!r}")
    return latency_type


class SearchSpaceLatencyContainer:
    """Latency of every candidate of every container of a search space, plus the constant part.

    The latency of an architecture ``a`` is ``constant_latency + sum_c operations_latencies[c][a[c]]``.

    Args:
        latency_type: What the numbers are (``'mmac'``, ``'time'``, ...).
        constant_latency: Latency of everything outside the containers.
        operations_latencies: One list of candidate latencies per container (architecture order).
        metadata: Optional JSON-serialisable details of the measurement (batch size, threads, ...).

    Raises:
        TypeError: If the type is not a non-empty string or a latency is not a number.
        ValueError: If a latency is negative, NaN or infinite, or a container has no candidate.
    """

    def __init__(
        self,
        latency_type: str,
        constant_latency: float,
        operations_latencies: Sequence[Sequence[float]],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._set(latency_type, constant_latency, operations_latencies, metadata)
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()  # search spaces using this container

    def _set(
        self,
        latency_type: Any,
        constant_latency: Any,
        operations_latencies: Any,
        metadata: Any,
    ) -> None:
        latency_type = _check_latency_type(latency_type)
        constant = _check_number(constant_latency, "constant_latency")
        if isinstance(operations_latencies, (str, bytes)) or not isinstance(operations_latencies, Sequence):
            raise TypeError(
                f"operations_latencies must be a list with one list of floats per container, got {operations_latencies!r}"
            )
        if not operations_latencies:
            raise ValueError("operations_latencies is empty; give one list of floats per container")
        operations: list[list[float]] = []
        for c, values in enumerate(operations_latencies):
            if isinstance(values, torch.Tensor):
                values = values.tolist()
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"operations_latencies[{c}] is {values!r}; it must be a list of floats")
            if not values:
                raise ValueError(f"operations_latencies[{c}] is empty; give one latency per candidate")
            operations.append([_check_number(v, f"operations_latencies[{c}][{k}]") for k, v in enumerate(values)])
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {metadata!r}")
        self._latency_type = latency_type
        self._constant = constant
        self._operations = operations
        self._metadata = dict(sorted((metadata or {}).items()))
        self._tables: dict[tuple[torch.dtype, str], ef.LatencyTable] = {}

    # ---------------------------------------------------------------------------------- accessors
    @property
    def latency_type(self) -> str:
        """What the numbers are (``'mmac'``, ``'time'``, ...)."""
        return self._latency_type

    @property
    def constant_latency(self) -> float:
        """Latency of everything outside the containers."""
        return self._constant

    @property
    def operations_latencies(self) -> list[list[float]]:
        """One list of candidate latencies per container (a copy)."""
        return [list(values) for values in self._operations]

    @property
    def metadata(self) -> dict[str, Any]:
        """Details of the measurement (a copy)."""
        return dict(self._metadata)

    @property
    def n_choices(self) -> tuple[int, ...]:
        """Number of candidates of every container."""
        return tuple(len(values) for values in self._operations)

    def table(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> ef.LatencyTable:
        """The :class:`enot.functional.LatencyTable` of this container (cached per dtype and device)."""
        key = (dtype, str(torch.device(device) if device is not None else torch.device("cpu")))
        if key not in self._tables:
            self._tables[key] = ef.latency_table(self._constant, self._operations, dtype=dtype, device=device)
        return self._tables[key]

    def check_matches(self, n_choices: Sequence[int], container_names: Sequence[str] | None = None) -> None:
        """Checks the container count and candidate counts against a search space's.

        Raises:
            ValueError: Naming the first container whose candidate count differs.
        """
        n_choices = tuple(n_choices)
        if len(n_choices) != len(self._operations):
            raise ValueError(
                f"the latency container has {len(self._operations)} containers; the search space has "
                f"{len(n_choices)}"
            )
        for c, (ours, theirs) in enumerate(zip(self.n_choices, n_choices)):
            if ours != theirs:
                name = container_names[c] if container_names else f"container {c}"
                raise ValueError(
                    f"the latency container has {ours} candidates for container {c}; the search space's "
                    f"{name!r} has {theirs}"
                )

    def attach(self, search_space: Any) -> None:
        """Records that ``search_space`` uses this container (``apply_latency_container`` calls it):
        :meth:`load_from_file` then refuses contents that do not fit it."""
        self.check_matches(search_space.layout.n_choices, search_space.layout.container_names)
        self._attached.add(search_space)

    def detach(self, search_space: Any) -> None:
        """Forgets ``search_space`` (it applied another container or none)."""
        self._attached.discard(search_space)

    # ---------------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written by :meth:`save_to_file`."""
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "latency_type": self._latency_type,
            "constant_latency": self._constant,
            "operations_latencies": self.operations_latencies,
            "metadata": self.metadata,
        }

    def save_to_file(self, path: str | os.PathLike[str]) -> None:
        """Writes the container as JSON; atomic (temporary file in the same folder, then rename).

        A failure while writing leaves any existing file at ``path`` untouched.
        """
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        atomic_write(path, lambda file: file.write(text), binary=False)

    @_ClassOrInstanceMethod
    def load_from_file(
        target: Any, path: str | os.PathLike[str], *, latency_type: str | None = None
    ) -> SearchSpaceLatencyContainer:
        """Reads a file written by :meth:`save_to_file`.

        On the class it returns a new container; on an instance it also replaces the instance's
        contents (and returns it), after checking that they fit every search space the instance is
        applied to (nothing changes otherwise).

        Args:
            path: The file.
            latency_type: If given, the file must hold this type.

        Raises:
            ValueError: If the file is not UTF-8 text, not valid JSON of this format and version, holds a negative,
                NaN or infinite latency, or a latency type other than ``latency_type``; on an instance
                applied to a search space, if its container or candidate counts do not fit that space.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{os.fspath(path)!r} is not a latency container file (not UTF-8 text: byte {error.object[error.start]:#04x} "
                f"at offset {error.start}; save_to_file writes UTF-8 JSON)"
            ) from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{os.fspath(path)!r} is not a latency container file (invalid JSON: {error})") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a latency container file (no \"format\": \"{FILE_FORMAT}\")")
        if data.get("version") != FILE_VERSION:
            raise ValueError(
                f"{os.fspath(path)!r} has latency file version {data.get('version')!r}; this enot reads version {FILE_VERSION}"
            )
        missing = [k for k in ("latency_type", "constant_latency", "operations_latencies") if k not in data]
        if missing:
            raise ValueError(f"{os.fspath(path)!r} lacks the fields {missing}")
        if latency_type is not None and data["latency_type"] != latency_type:
            raise ValueError(
                f"{os.fspath(path)!r} holds latency type {data['latency_type']!r}, not the {latency_type!r} asked for"
            )
        cls = type(target) if isinstance(target, SearchSpaceLatencyContainer) else target
        try:
            loaded = cls(data["latency_type"], data["constant_latency"], data["operations_latencies"],
                         metadata=data.get("metadata"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{os.fspath(path)!r}: {error}") from None
        if not isinstance(target, SearchSpaceLatencyContainer):
            return loaded
        # Into an instance: every search space using it must still fit, checked before anything changes.
        for search_space in list(target._attached):
            support.check_latency_fits(search_space.layout, loaded.n_choices, what=f"{os.fspath(path)!r}")
        target._set(loaded.latency_type, loaded.constant_latency, loaded.operations_latencies, loaded.metadata)
        return target

    # ---------------------------------------------------------------------------------- dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpaceLatencyContainer):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # mutable through load_from_file

    def __getstate__(self) -> dict[str, Any]:
        # The search spaces using it are not part of the value (a weak set cannot be copied or pickled);
        # a copy is attached again when a search space applies it (its reads are checked regardless).
        return {k: v for k, v in self.__dict__.items() if k != "_attached"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attached = weakref.WeakSet()

    def __repr__(self) -> str:
        metadata = f", metadata={self._metadata!r}" if self._metadata else ""
        return (
            f"SearchSpaceLatencyContainer(latency_type={self._latency_type!r}, constant_latency={self._constant!r}, "
            f"operations_latencies={self._operations!r}{metadata})"
        )

    def __str__(self) -> str:
        table = self.table()
        n = math.prod(self.n_choices)
        lines = [
            f"SearchSpaceLatencyContainer: latency_type={self._latency_type!r}, {len(self._operations)} containers, "
            f"{n} architectures",
            f"  constant: {self._constant:.6g}",
        ]
        width = len(str(len(self._operations) - 1))
        for c, values in enumerate(self._operations):
            lines.append(f"  container {c:>{width}}: " + "  ".join(f"{v:.6g}" for v in values))
        lines.append(
            f"  min {float(ef.min_latency(table)):.6g}, mean {float(ef.mean_latency(table)):.6g}, "
            f"max {float(ef.max_latency(table)):.6g}"
        )
        if self._metadata:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in self._metadata.items()))
        return "\n".join(lines)

