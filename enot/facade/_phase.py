"""`SearchSpaceOptimizer`: what the search-space phases (pretrain, search) share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

import enot.functional as ef
from enot.distributed import check_not_ddp
from enot.facade import _state_check
from enot.facade._base import BaseEnotOptimizer, check_options
from enot.models import SearchSpaceModel

__all__ = ["SearchSpaceOptimizer"]


class SearchSpaceOptimizer(BaseEnotOptimizer):
    """Base of the optimizers whose model is a :class:`~enot.models.SearchSpaceModel`.

    It checks the search space (refusing ``DistributedDataParallel``: these phases reduce gradients
    themselves, ``docs/distributed.md``) and the options, holds the architecture sampler's random key
    (``seed`` option, saved in ``state_dict()["enot"]``) and sets the gradient reducer (``reducer``
    option).  Subclasses list their options in ``_options`` and implement ``_run_closure``.

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpaceModel`` (also when wrapped in DDP) or
            ``optimizer`` not a ``torch.optim.Optimizer``.
        ValueError: On an unknown option (naming every accepted one and the closest), or if
            ``optimizer`` holds none of the parameters the phase trains (:meth:`_check_params`).
    """

    _options: tuple[str, ...] = ("reducer", "seed")
    _refuses_ddp = True

    def __init__(self, search_space: SearchSpaceModel, optimizer: torch.optim.Optimizer, options: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_not_ddp(name, search_space)
        if not isinstance(search_space, SearchSpaceModel):
            raise TypeError(
                f"{name} expects a SearchSpaceModel, got {type(search_space).__name__}; "
                "wrap your model with enot.models.SearchSpaceModel"
            )
        check_options(type(self), options, self._options)
        super().__init__(search_space, optimizer)
        self._check_params(optimizer.param_groups)
        self._key = ef.random.key(options.get("seed", 0))
        self._use_reducer(options.get("reducer", "auto"))

    @property
    def search_space(self) -> SearchSpaceModel:
        """Search space model passed to the constructor."""
        return self._model  # type: ignore[return-value]

    def _enot_state(self) -> dict[str, Any]:
        layout = self.search_space.layout
        space = {"n_choices": list(layout.n_choices), "container_names": list(layout.container_names)}
        return {**super()._enot_state(), "key": self._key.clone(), "space": space}

    def _snapshot(self) -> dict[str, Any]:
        return {**super()._snapshot(), "key": self._key, "architecture": self.search_space.forward_architecture}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        super()._restore(snapshot)
        self._key = snapshot["key"]  # keys are never changed in place: the reference is the value
        self.search_space.sample(snapshot["architecture"])

    def _check_enot_state(self, state: Any) -> None:
        # The search space first: its message says more than the parameter counts that follow from it.
        if isinstance(state, Mapping) and "space" in state:  # dicts saved without the record load as before
            layout = self.search_space.layout
            _state_check.check_space(type(self).__name__, state["space"], layout.n_choices, layout.container_names)
        super()._check_enot_state(state)

    def _load_enot_state(self, state: dict[str, Any]) -> None:
        super()._load_enot_state(state)
        if "key" in state:
            self._key = torch.as_tensor(state["key"], dtype=torch.int64).detach().clone()
