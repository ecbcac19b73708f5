"""`SearchSpaceModel`: a user model whose `SearchVariantsContainer`s define a space of architectures."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

import enot.functional as ef
from enot.functional import support
from enot.models._container import SearchVariantsContainer
from enot.models._latency_source import LatencySource
from enot.models._portable import make_portable

__all__ = ["SearchSpaceModel"]


class SearchSpaceModel(nn.Module):
    """Wraps a model that contains :class:`SearchVariantsContainer` modules anywhere in its tree.

    The weights stay in ``original_model``; the architecture logits (one 1-D parameter per
    container, its length the container's number of candidates) live in ``architecture_logits``.
    An architecture is a ``list[int]`` with one candidate index per container, in the order of
    :attr:`search_variants_containers` (module-tree order).

    Args:
        original_model: The user's model.
        **kwargs: Reserved; any keyword is rejected.

    Raises:
        TypeError: If ``original_model`` is not an ``nn.Module``.
        ValueError: If a keyword argument is given or the model holds no container.
    """

    def __init__(self, original_model: nn.Module, **kwargs: Any) -> None:
        super().__init__()
        if kwargs:
            raise ValueError(f"SearchSpaceModel got unknown keyword arguments {sorted(kwargs)}; it takes none")
        if not isinstance(original_model, nn.Module):
            raise TypeError(f"SearchSpaceModel expects an nn.Module, got {type(original_model).__name__}")
        if isinstance(original_model, SearchSpaceModel):
            raise TypeError("SearchSpaceModel got a SearchSpaceModel; wrap the user model only once")
        self.original_model = original_model
        named = [
            (name, module)
            for name, module in original_model.named_modules()
            if isinstance(module, SearchVariantsContainer)
        ]
        if not named:
            raise ValueError(
                "SearchSpaceModel found no SearchVariantsContainer in the model; put the candidate "
                "operations of each choice block into a SearchVariantsContainer"
            )
        # A model that is itself a container is named "original_model" (not "original_model.").
        self._container_names = tuple(f"original_model.{name}" if name else "original_model" for name, _ in named)
        self._containers = tuple(module for _, module in named)
        param = next(original_model.parameters(), None)
        device = param.device if param is not None else None
        self.architecture_logits = nn.ParameterList(
            nn.Parameter(torch.zeros(c.n_choices, device=device)) for c in self._containers
        )
        self._layout = support.build_layout(self, self._container_names)
        self._output_distribution_optimized = False
        self._latency_container: LatencySource | None = None  # set by apply_latency_container
        self._compiled_model: nn.Module | None = None  # set by compile_paths

    # ----------------------------------------------------------------------------------- structure
    @property
    def search_variants_containers(self) -> list[SearchVariantsContainer]:
        """The containers, in module-tree order; an architecture indexes them in this order."""
        return list(self._containers)

    @property
    def layout(self) -> ef.SearchSpaceLayout:
        """Static description of the space for :mod:`enot.functional`."""
        return self._layout

    def model_parameters(self) -> Iterator[nn.Parameter]:
        """The weights: every parameter except the architecture logits."""
        return self.original_model.parameters()

    def architecture_parameters(self) -> Iterator[nn.Parameter]:
        """The architecture logits, one 1-D tensor per container."""
        return iter(self.architecture_logits)

    # ------------------------------------------------------------------------------ architectures
    def normalize_architecture(self, architecture: Any) -> list[int]:
        """``architecture`` as ``list[int]`` (``enot.functional.validate_architecture``); ENOT's old form
        ``[[i], [j], ...]`` (one index per entry) is read too.

        Raises:
            TypeError, ValueError: As ``enot.functional.validate_architecture`` (naming the bad entry).
        """
        if isinstance(architecture, (list, tuple)):
            flat = []
            for item in architecture:
                if isinstance(item, (list, tuple)):
                    if len(item) != 1:
                        raise ValueError(f"old-style architecture entries hold one index each, got {item!r}")
                    item = item[0]
                flat.append(item)
            architecture = flat
        return ef.validate_architecture(self.layout.n_choices, architecture, self._container_names)

    _normalize = normalize_architecture  # the earlier private name

    def sample(self, forward_indices: Sequence[int] | Sequence[Sequence[int]]) -> None:
        """Selects an architecture.

        Args:
            forward_indices: One candidate index per container (``[[i], [j], ...]`` also accepted).

        Raises:
            TypeError: If ``forward_indices`` is not a sequence of integers or a 1-D integer tensor, or an
                entry is not an integer (a float, a bool...), naming the container and the allowed range.
            ValueError: On a wrong length or an index out of range (naming the container).
        """
        architecture = self.normalize_architecture(forward_indices)
        for container, index in zip(self._containers, architecture):
            container.active_index = index

    @contextlib.contextmanager
    def selected(self, architecture: Sequence[int]) -> Iterator[None]:
        """Context manager: select ``architecture`` inside, restore the previous one after."""
        previous = self.forward_architecture
        self.sample(architecture)
        try:
            yield
        finally:
            self.sample(previous)

    def sample_random_arch(
        self, generator: torch.Generator | None = None, *, key: torch.Tensor | None = None
    ) -> list[int]:
        """Selects and returns an architecture drawn uniformly at random (the ``"uniform"`` sampler).

        Args:
            generator: Draws the seed of the key when ``key`` is not given (``None``: torch's global
                generator, as ``torch.randint`` does).
            key: An ``enot.functional.random`` key to draw from (the same key, the same architecture).
        """
        if key is None:
            key = ef.random.key(int(torch.randint(0, 2**62, (), generator=generator)))
        inputs = ef.SamplingInputs(self.layout.n_choices)
        architecture = ef.sample_architectures(key, "uniform", inputs)[0]
        self.sample(architecture)
        return architecture

    def sample_best_arch(self) -> list[int]:
        """Selects and returns the most probable candidate of every container."""
        architecture = self.best_architecture_int
        self.sample(architecture)
        return architecture

    @property
    def forward_architecture(self) -> list[int]:
        """The selected architecture."""
        return [c.active_index for c in self._containers]

    @property
    def best_architecture_int(self) -> list[int]:
        """The candidate of highest probability in every container (lowest index on ties)."""
        return ef.best_architecture(tuple(self.architecture_logits))

    @property
    def architecture_probabilities(self) -> list[torch.Tensor]:
        """Softmax of each container's logits (detached)."""
        return [torch.softmax(p.detach(), dim=0) for p in self.architecture_logits]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the user model with the selected architecture."""
        if self._compiled_model is not None:
            return self._compiled_model(*args, **kwargs)
        return self.original_model(*args, **kwargs)

    @property
    def paths_compiled(self) -> bool:
        """Whether :meth:`compile_paths` has run."""
        return self._compiled_model is not None

    def compile_paths(self, **compile_kwargs: Any) -> None:
        """Compiles the search space so that any architecture runs through compiled graphs.

        The model outside the containers and every candidate are compiled separately with
        ``torch.compile(**compile_kwargs)``; each container is a graph break that reads the selected
        candidate in Python.  The number of graphs is therefore bounded by the number of candidates
        (plus the segments between containers), not by the number of architectures: once every
        candidate has run, a new architecture compiles nothing.  Outputs are unchanged.
        """
        for container in self._containers:
            container.compile_candidates(**compile_kwargs)
        # Kept out of the module tree: state_dict, parameters() and named_modules() stay as before.
        self.__dict__["_compiled_model"] = torch.compile(self.original_model, **compile_kwargs)

    # --------------------------------------------------------------------------------- extraction
    def get_network_by_indexes(self, indices: Sequence[int] | Sequence[Sequence[int]]) -> nn.Module:
        """Returns a plain ``nn.Module`` (no ``enot`` class inside) for one architecture.

        It holds copies of the shared weights and buffers on that path and, in ``eval()``, computes
        the same outputs as the search space with that architecture selected.
        """
        architecture = self.normalize_architecture(indices)
        chosen = dict(zip(self._containers, architecture))
        model = _copy_without_containers(self.original_model, chosen)
        return make_portable(model)

    def get_network_with_best_arch(self) -> nn.Module:
        """:meth:`get_network_by_indexes` of :attr:`best_architecture_int`."""
        return self.get_network_by_indexes(self.best_architecture_int)

    # ------------------------------------------------------------------ latency (enot.latency)
    @property
    def latency_type(self) -> str | None:
        """Type of the applied latency container (``'mmac'``, ``'time'``, ...), ``None`` before."""
        return None if self._latency_container is None else self._latency_container.latency_type

    @property
    def constant_latency(self) -> float:
        """Latency of everything outside the containers.

        Raises:
            RuntimeError: If no latency container is applied.
        """
        return self.get_latency_container().constant_latency

    @property
    def forward_latency(self) -> torch.Tensor:
        """Latency of the selected architecture (0-d float64 tensor on the logits' device).

        Always float64, the precision every latency-bound check uses, so an architecture that
        meets a bound never reads as above it.

        Raises:
            RuntimeError: If no latency container is applied.
        """
        table = self.get_latency_container().table(dtype=torch.float64, device=self.architecture_logits[0].device)
        return ef.architecture_latency(self.forward_architecture, table)

    @property
    def loss_latency_expectation(self) -> torch.Tensor:
        """Expected latency under the current architecture probabilities (0-d tensor).

        ``constant + sum_c softmax(logits_c) . latencies_c``; differentiable with respect to
        :meth:`architecture_parameters`.

        Raises:
            RuntimeError: If no latency container is applied.
        """
        return ef.expected_latency(tuple(self.architecture_logits), self._latency_table())

    def get_latency_container(self) -> LatencySource:
        """The applied :class:`enot.latency.SearchSpaceLatencyContainer`.

        Raises:
            RuntimeError: If none is applied (call ``enot.latency.initialize_latency`` or
                :meth:`apply_latency_container` first).
        """
        if self._latency_container is None:
            raise RuntimeError(
                "this search space has no latency; call enot.latency.initialize_latency(latency_type, "
                "search_space, inputs) or search_space.apply_latency_container(container) first"
            )
        # Checked at every use too (a tuple comparison): a container changed after it was applied
        # never gives latencies of another space.
        self._latency_container.check_matches(self.layout.n_choices, self.layout.container_names)
        return self._latency_container

    def apply_latency_container(self, container: LatencySource) -> None:
        """Uses ``container`` as this search space's latency table.

        Args:
            container: An ``enot.latency.SearchSpaceLatencyContainer`` (or any :class:`LatencySource`).

        The container is told (``container.attach(self)``), so that a later change of it that does not
        fit this space (``container.load_from_file``) is refused.

        Raises:
            TypeError: If ``container`` is not a ``SearchSpaceLatencyContainer`` (has not the
                members of :class:`LatencySource`).
            ValueError: If its container count or candidate counts differ from this search space's, or
                if the space has nested containers (latency tables are additive, one term per container).
        """
        if not isinstance(container, LatencySource):
            raise TypeError(
                f"apply_latency_container expects a SearchSpaceLatencyContainer (latency_type, constant_latency, "
                f"table(), check_matches(), attach(), detach()), got {type(container).__name__}"
            )
        support.check_latency_fits(self.layout)
        container.check_matches(self.layout.n_choices, self.layout.container_names)
        self._set_latency_container(container)

    def remove_latency_container(self) -> None:
        """Removes the latency container (``latency_type`` becomes ``None``), detaching it."""
        self._set_latency_container(None)

    def _set_latency_container(self, container: LatencySource | None) -> None:
        """Replaces the latency container (``None``: removes it), detaching the previous one."""
        previous = self._latency_container
        if container is not None:
            container.attach(self)
        if previous is not None and previous is not container:
            previous.detach(self)
        self._latency_container = container

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.__dict__.get("_latency_container") is not None:  # a copy (deepcopy, pickle) attaches its copy
            self._latency_container.attach(self)

    def _latency_table(self) -> ef.LatencyTable:
        logits = self.architecture_logits[0]
        return self.get_latency_container().table(dtype=logits.dtype, device=logits.device)
    # ------------------------------------------------------------------ output distribution init
    @property
    def output_distribution_optimization_enabled(self) -> bool:
        """Whether :meth:`initialize_output_distribution_optimization` has run."""
        return self._output_distribution_optimized

    def initialize_output_distribution_optimization(self, *args: Any, **kwargs: Any) -> None:
        """Data-dependent initialisation so that every path is a sensible network from step one.

        Runs the model on the sample batch ``(*args, **kwargs)`` and, container by container in
        module-tree order (with the selected architecture), rescales each candidate's last affine
        layer so that every candidate's output has the same standard deviation on the batch: the
        geometric mean of the candidates' output standard deviations (three passes).  Buffers are
        restored, so only weights change.

        Raises:
            RuntimeError: If called a second time.
            ValueError: If the candidates of a container give outputs of different shapes (or one fails
                on the container's input), naming the container and the shapes; nothing has changed then.
        """
        if self._output_distribution_optimized:
            raise RuntimeError(
                "initialize_output_distribution_optimization was already called on this search space; "
                "it runs once, before pretraining"
            )
        from enot.models._output_distribution import match_output_distributions

        match_output_distributions(self, args, kwargs)
        self._output_distribution_optimized = True

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: ANN001
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "_output_distribution_optimized"] = torch.tensor(
            self._output_distribution_optimized
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        key = prefix + "_output_distribution_optimized"
        if key in state_dict:
            self._output_distribution_optimized = bool(state_dict.pop(key))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _copy_without_containers(module: nn.Module, chosen: dict[nn.Module, int]) -> nn.Module:
    """Deep copy of ``module`` in which every container is replaced by its chosen candidate."""
    if isinstance(module, SearchVariantsContainer):
        return _copy_without_containers(module.search_variants[chosen[module]], chosen)
    if not any(isinstance(m, SearchVariantsContainer) for m in module.modules()):
        return copy.deepcopy(module)
    children = dict(module._modules)
    # Copy the shell without the children, then put converted copies of the children back.
    module._modules = {}
    try:
        shell = copy.deepcopy(module)
    finally:
        module._modules = children
    for name, child in children.items():
        shell._modules[name] = None if child is None else _copy_without_containers(child, chosen)
    return shell
