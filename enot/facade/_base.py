"""`BaseEnotOptimizer`: what every phase's stateful optimizer shares."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from enot.distributed import DistributedStepError, GradientReducer, fingerprint, is_distributed, no_ddp_forward
from enot.facade import _state_check
from enot.functional import support
from enot.functional.support import all_finite

__all__ = ["BaseEnotOptimizer", "check_options"]

Closure = Callable[[], Any]


def check_options(owner: type | str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raises ``ValueError`` naming every option not in ``allowed``, every accepted name (``owner``'s
    keyword parameters too when it is a class) and the closest one (``enot.functional.support.check_options``);
    an option (or a typo of one) that another ENOT optimizer takes is named with that class."""
    support.check_options(owner, options, allowed, _sibling_options())


def _sibling_options() -> dict[str, tuple[str, ...]]:
    """Every ENOT optimizer class of the package: its name and the names it accepts (parameters and options)."""
    found: dict[str, tuple[str, ...]] = {}
    pending = list(BaseEnotOptimizer.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("enot.") and not cls.__name__.startswith("_"):
            names = (*support.accepted_keywords(cls), *getattr(cls, "_options", ()))
            found[cls.__name__] = tuple(n for n in names if n not in ("model", "optimizer", "search_space"))
    return found


class BaseEnotOptimizer(torch.optim.Optimizer):
    """Wraps the user's ``torch.optim.Optimizer``, which performs every parameter update.

    It subclasses ``torch.optim.Optimizer`` (so PyTorch's learning-rate schedulers accept it) and
    exposes the wrapped optimizer's ``param_groups``, ``state`` and ``defaults``, so
    ``torch.optim.lr_scheduler`` classes and ``torch.amp.GradScaler.step(enot_optimizer)`` work.

    Subclasses implement :meth:`_run_closure` (what one ``model_step`` does around the user's closure).

    Hooks registered on the ENOT optimizer itself fire as on any ``torch.optim.Optimizer`` and
    receive it (not the wrapped one) as their first argument: ``register_step_pre_hook`` and
    ``register_step_post_hook`` around :meth:`step` (global ``torch.optim`` step hooks too),
    ``register_state_dict_pre_hook``/``_post_hook`` in :meth:`state_dict`,
    ``register_load_state_dict_pre_hook``/``_post_hook`` in :meth:`load_state_dict`.  Hooks
    registered on the wrapped optimizer fire in its own ``step``, which :meth:`step` calls.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``optimizer`` not a ``torch.optim.Optimizer``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        # torch.optim.Optimizer.__init__ is not called: the parameters belong to the wrapped optimizer.
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} expects an nn.Module model, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer) or isinstance(optimizer, BaseEnotOptimizer):
            raise TypeError(
                f"{type(self).__name__} expects a torch.optim.Optimizer to wrap, got {type(optimizer).__name__}"
            )
        self._model = model
        self._optimizer = optimizer
        self._pending = False  # gradients accumulated by model_step and not yet applied by step
        self._step_count = 0
        self._reducer: GradientReducer | None = None  # set by _use_reducer in distributed runs
        self._reducer_synced = False  # weights broadcast from rank 0 before the first step
        self._round_architectures: list[Any] = []  # sampled since the last step, checked across ranks
        # Read by torch.optim.Optimizer's register_* methods and run by step/state_dict/load_state_dict.
        self._optimizer_step_pre_hooks: dict = OrderedDict()
        self._optimizer_step_post_hooks: dict = OrderedDict()
        self._optimizer_state_dict_pre_hooks: dict = OrderedDict()
        self._optimizer_state_dict_post_hooks: dict = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: dict = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: dict = OrderedDict()

    # ------------------------------------------------------------------- the wrapped optimizer
    @property
    def model(self) -> nn.Module:
        """Model passed to the constructor."""
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The wrapped user optimizer."""
        return self._optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """``param_groups`` of the wrapped optimizer (schedulers and gradient scalers edit them)."""
        return self._optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self._optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        """``state`` of the wrapped optimizer."""
        return self._optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self._optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """``defaults`` of the wrapped optimizer."""
        return self._optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self._optimizer.defaults = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Calls ``add_param_group`` of the wrapped optimizer, once the group's parameters are checked.

        Raises:
            ValueError: If the group holds only parameters this phase never trains (see the phase).
        """
        if isinstance(param_group, Mapping) and "params" in param_group:
            params = param_group["params"]
            param_group = {**param_group, "params": [params] if isinstance(params, torch.Tensor) else list(params)}
            self._check_params([param_group], new_group=True)
        self._optimizer.add_param_group(param_group)

    def _check_params(self, groups: list[Any], new_group: bool = False) -> None:
        """Raises ``ValueError`` if with ``groups`` (the optimizer's, or one ``new_group``) this phase
        would learn nothing (subclasses)."""

    def state_dict(self) -> dict[str, Any]:
        """Calls ``state_dict`` of the wrapped optimizer and returns the result.

        ENOT's own state (random key of the architecture sampler, step count...) is added under the
        extra key ``"enot"``, so a run resumed from this dict continues exactly; a plain
        ``torch.optim.Optimizer`` ignores that key when loading the dict.
        """
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        state_dict = {**self._optimizer.state_dict(), "enot": self._enot_state()}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            changed = post_hook(self, state_dict)
            if changed is not None:
                state_dict = changed
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Calls ``load_state_dict`` of the wrapped optimizer (the ``"enot"`` entry, if any, is
        stripped first and restores ENOT's own state; dicts saved without it load as before)."""
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            changed = pre_hook(self, state_dict)
            if changed is not None:
                state_dict = changed
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict expects a dict, got {type(state_dict).__name__}")
        state_dict = dict(state_dict)
        enot_state = state_dict.pop("enot", None)
        # Everything is checked before anything is loaded: a refused dict leaves the optimizer as it was.
        if enot_state is not None:
            self._check_enot_state(enot_state)
        self._check_wrapped_state(state_dict)
        self._optimizer.load_state_dict(state_dict)
        if enot_state is not None:
            self._load_enot_state(enot_state)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _enot_state(self) -> dict[str, Any]:
        """ENOT's own state that a resumed run needs (subclasses extend it: sampler key...)."""
        return {"step_count": self._step_count, "param_shapes": _state_check.param_shapes(self.param_groups)}

    def check_enot_state(self, state: Any) -> None:
        """Raises ``TypeError``/``ValueError`` if ``state`` (the ``"enot"`` entry of a state dict) is not one
        this optimizer can load; changes nothing (``load_state_dict`` and ``enot.utils.load_checkpoint``
        check with it before they load anything)."""
        self._check_enot_state(state)

    def _check_enot_state(self, state: Any) -> None:
        """Raises ``TypeError``/``ValueError`` if ``state`` is not an ``"enot"`` entry this optimizer can
        load (unknown keys, values of the wrong type, parameters of other shapes); changes nothing."""
        _state_check.check_enot_entry(type(self).__name__, state, self._enot_state())
        if "param_shapes" in state:
            _state_check.check_param_shapes(type(self).__name__, state["param_shapes"], self.param_groups)

    def _check_wrapped_state(self, state_dict: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` if the wrapped optimizer's part of ``state_dict`` holds per-parameter
        state of another shape than the parameter (state saved for another model)."""
        _state_check.check_optimizer_state(type(self).__name__, state_dict, self.param_groups)

    def _load_enot_state(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`_enot_state` returned."""
        self._step_count = int(state.get("step_count", 0))

    def _raise_if_not_finite(self, result: Any, what: str, kept: str) -> None:
        """Raises ``FloatingPointError`` if the closure's ``result`` is a non-finite loss or a gradient
        the wrapped optimizer would apply is NaN or infinite (``what``: the step and architecture;
        ``kept``: what the message says was not updated).  :meth:`model_step` then restores the state
        from before the step, so the message says that nothing changed."""
        finite_or_raise(result, what, self._failure_note(kept))
        self._check_finite_grads(what, kept)

    def _failure_note(self, kept: str) -> str:
        """What a failed :meth:`model_step` leaves, for error messages."""
        if self._reducer is not None:
            return f"the accumulated gradients were dropped on every rank, {kept} not updated"
        return (
            f"nothing was changed: {kept}, gradients, buffers and the sampler key are as before the step (retry it "
            "or skip the batch)"
        )

    def _check_finite_grads(self, what: str, kept: str, note: str | None = None) -> None:
        """Raises ``FloatingPointError`` naming the parameters whose ``.grad`` is not finite.

        It catches a non-finite loss that the closure did not return (ENOT's tutorials' closures
        return ``None``), and finite losses with non-finite gradients; one reduction over every
        gradient (cost: ``docs/benchmarks.md``).
        """
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if all_finite(grads):
            return
        names = {id(p): n for n, p in self._model.named_parameters()}
        bad = [
            names.get(id(p), f"group {g} parameter {i}")
            for g, group in enumerate(self.param_groups)
            for i, p in enumerate(group["params"])
            if p.grad is not None and not all_finite([p.grad])
        ]
        listed = ", ".join(repr(n) for n in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise FloatingPointError(
            f"{what}: the gradient of {listed} is NaN or infinite (the loss or the backward pass was not finite); "
            f"{note or self._failure_note(kept)}"
        )

    # --------------------------------------------------------------- a failed step changes nothing
    def _snapshot(self) -> dict[str, Any]:
        """What a :meth:`model_step` may change, to put back if it fails (subclasses extend it).

        Weights, ``.grad`` (where it exists: gradients pending from an earlier ``model_step`` of the
        same ghost batch) and buffers (batch-norm statistics) are copied *lazily* (copy-on-write,
        :func:`_lazy_copy`): taking the snapshot copies no data, and a tensor is copied only when the
        step writes it (the batch-norm statistics of the sampled path, pending gradients).  A closure
        that changes weights in place is undone too.
        """
        modules = list(self._model.modules())  # one walk for both (it costs as much as the lazy copies)
        params = {id(p): p for m in modules for p in m._parameters.values() if p is not None}
        params.update((id(p), p) for group in self.param_groups for p in group["params"])
        buffers = {id(b): b for m in modules for b in m._buffers.values() if b is not None}
        with torch.no_grad():  # copies outside autograd (cheaper than a detach per tensor)
            return {
                "params": [(p, _lazy_copy(p)) for p in params.values()],
                "grads": [(p, _lazy_copy(p.grad)) for p in params.values() if p.grad is not None],
                "buffers": [(b, _lazy_copy(b)) for b in buffers.values()],
                "pending": self._pending,
            }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        """Puts back what :meth:`_snapshot` saved."""
        with torch.no_grad():
            for p, value in snapshot["params"]:
                if not torch.equal(p, value):  # only weights the closure wrote: a copy bumps the version
                    p.copy_(value)
            grads = {id(p): grad for p, grad in snapshot["grads"]}
            for p, _ in snapshot["params"]:
                p.grad = grads.get(id(p))  # gradients that did not exist before the step are dropped
            for b, value in snapshot["buffers"]:
                b.copy_(value)
        self._pending = snapshot["pending"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Calls ``zero_grad`` of the wrapped optimizer; pending accumulated gradients are dropped."""
        self._optimizer.zero_grad(set_to_none=set_to_none)
        self._pending = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._optimizer!r})"

    # --------------------------------------------------------------------------- distributed
    _refuses_ddp = False  # the search-space phases reduce gradients themselves

    def _use_reducer(self, reducer: Any) -> None:
        """Sets the gradient reducer: ``"auto"`` makes one when a process group of several ranks exists."""
        if isinstance(reducer, str) and reducer == "auto":
            reducer = GradientReducer() if is_distributed() else None
        if reducer is not None and not isinstance(reducer, GradientReducer):
            raise TypeError(
                f"{type(self).__name__} reducer must be 'auto', None or an enot.distributed.GradientReducer, "
                f"got {type(reducer).__name__}"
            )
        self._reducer = reducer

    @property
    def reducer(self) -> GradientReducer | None:
        """The :class:`enot.distributed.GradientReducer` that averages gradients across ranks (``None``: one process)."""
        return self._reducer

    def _note_architectures(self, architectures: Any) -> None:
        """Records what this rank sampled, to check at :meth:`step` that all ranks sampled the same."""
        if self._reducer is not None:
            self._round_architectures.append(architectures)

    def _reduce_buffers(self, architectures: list[Any]) -> None:
        """Averages across ranks the buffers the last round changed (subclasses: batch-norm statistics)."""

    def _synchronize(self) -> None:
        """Checks that all ranks sampled the same, then averages gradients (and buffers) across ranks."""
        assert self._reducer is not None
        architectures, self._round_architectures = self._round_architectures, []
        try:
            self._reducer.agree(fingerprint(architectures), what="sampled architectures", step=self._step_count)
        except DistributedStepError:
            self.zero_grad()
            raise
        self._reducer.reduce_grads_(p for group in self.param_groups for p in group["params"])
        self._reduce_buffers(architectures)

    def _run_closure_guarded(self, closure: Closure) -> Any:
        if self._reducer is not None and not self._reducer_synced:
            # As DistributedDataParallel does: every rank starts from rank 0's weights and buffers.
            self._reducer.broadcast_([*self._model.parameters(), *self._model.buffers()])
            self._reducer_synced = True
        if not self._refuses_ddp:
            return self._run_closure(closure)
        with no_ddp_forward(type(self).__name__, self._model):
            return self._run_closure(closure)

    # ------------------------------------------------------------------------------ stepping
    def _run_closure(self, closure: Closure) -> Any:
        """Runs one gradient accumulation (subclasses add sampling, estimators...)."""
        return closure()

    def _apply(self) -> None:
        """Applies the accumulated gradients (the wrapped optimizer's ``step``)."""
        self._optimizer.step()

    def model_step(self, closure: Closure) -> Any:
        """Performs a gradient accumulation step: runs ``closure`` (forward + ``loss.backward()``).

        Call it once per batch of a larger "ghost batch", then :meth:`step` without arguments.

        Returns:
            The closure's result (a loss tensor, a float or ``None``).
        """
        if not callable(closure):
            raise TypeError(f"model_step expects a callable closure, got {type(closure).__name__}")
        snapshot = self._snapshot() if self._reducer is None else None
        try:
            result = self._run_closure_guarded(closure)
        except BaseException as error:
            if snapshot is not None:
                # One process: the step failed as a whole; gradients, buffers, the sampler key and the
                # selected architecture are as before it, so a retry reproduces it.
                self._restore(snapshot)
            else:
                # Distributed: every rank drops the round (the others raise in step()), as before.
                self._round_architectures = []
                self.zero_grad()
                if isinstance(error, Exception) and not isinstance(error, DistributedStepError):
                    # Tell the other ranks (waiting at their next agreement check) instead of leaving them hanging.
                    self._reducer.agree(0, what="", step=self._step_count, error=error)
            raise
        self._pending = True
        return result

    @torch.optim.Optimizer.profile_hook_step  # runs the step pre/post hooks, as torch.optim does
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        """Performs a single optimization step (parameter update by the wrapped optimizer).

        ``step(closure)`` equals ``model_step(closure)`` followed by ``step()``.  Step pre-hooks run
        before (and before the closure), post-hooks after the update.

        Raises:
            RuntimeError: If a closure is given while gradients from ``model_step`` are pending.
        """
        result = None
        own_backward = closure is None and not self._pending  # the user ran backward: nothing checked it yet
        if closure is not None:
            if self._pending:
                raise RuntimeError(
                    f"{type(self).__name__}.step got a closure while gradients accumulated by model_step are "
                    "pending; call step() without a closure to apply them"
                )
            result = self.model_step(closure)
        if self._reducer is not None:
            self._synchronize()
        if own_backward:  # after the reduction, so that every rank decides alike
            self._check_finite_grads(
                f"{type(self).__name__}.step {self._step_count} (after your own backward)", "weights",
                note="the wrapped optimizer did not step and nothing was changed (zero the gradients, then retry "
                "or skip the batch)",
            )
        self._apply()
        self._pending = False
        self._step_count += 1
        return result


def finite_or_raise(result: Any, what: str, note: str = "nothing was updated") -> None:
    """Raises ``FloatingPointError`` if ``result`` is a loss that is NaN or infinite."""
    if isinstance(result, torch.Tensor):
        finite = bool(torch.isfinite(result.detach()).all())
    elif isinstance(result, (float, int)):
        finite = math.isfinite(float(result))
    else:
        return
    if not finite:
        raise FloatingPointError(
            f"{what}: the closure returned a non-finite loss ({result!r}); {note}"
        )


_LAZY_CLONE = getattr(torch, "_lazy_clone", None)  # copy-on-write clone (private in torch 2.x)


def _lazy_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` that stays equal to its value now: copy-on-write where torch supports it
    (``torch._lazy_clone``: no data copied until either side is written), else ``clone()``."""
    if _LAZY_CLONE is not None:
        try:
            return _LAZY_CLONE(tensor)
        except (RuntimeError, NotImplementedError, TypeError):
            pass
    return tensor.clone()
