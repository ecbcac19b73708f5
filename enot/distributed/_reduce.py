"""`GradientReducer`: averages gradients and batch-norm statistics across ranks with one all-reduce.

Every rank samples the same architectures (the sampler's key comes from a shared seed), so every
rank holds gradients for the same set of weights and a flat all-reduce of them lines up.  A cheap
agreement check (one all-gather of four integers per step) verifies that before reducing, and
carries a "this rank failed" flag, so that an error on one rank stops every rank with a clear
message instead of leaving the others waiting in the all-reduce.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistributedStepError", "GradientReducer", "fingerprint"]


class DistributedStepError(RuntimeError):
    """Raised on every rank when a rank failed during a step or the ranks disagree on what they computed."""


def fingerprint(value: Any) -> int:
    """A 32-bit hash of ``repr(value)`` that is the same in every process (unlike ``hash`` of a str)."""
    return zlib.crc32(repr(value).encode())


class GradientReducer:
    """Averages tensors across the ranks of a ``torch.distributed`` process group.

    Pass it as ``reduce_grads`` / ``reduce_buffers`` to the pure steps of :mod:`enot.functional`, or
    as the ``reducer`` option of the ENOT optimizers (which make one by themselves when a process
    group with more than one rank exists).

    Args:
        group: Process group (default: the world).
        check: Verify before every reduction that all ranks reduce the same tensors (names, sizes)
            and, in the optimizers, sampled the same architectures; costs one all-gather of four
            integers per step.
        bucket_cap_mb: Tensors are flattened into buckets of about this size, one all-reduce each.

    Raises:
        RuntimeError: If no process group was initialised (call ``enot.distributed.init_from_env()``).
    """

    def __init__(self, group: Any = None, *, check: bool = True, bucket_cap_mb: float = 25.0) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "GradientReducer needs a torch.distributed process group; call "
                "enot.distributed.init_from_env() first (and launch with torchrun)"
            )
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        self.group = group
        self.check = bool(check)
        self._bucket_bytes = int(bucket_cap_mb * 2**20)

    @property
    def rank(self) -> int:
        """Rank of this process in the group."""
        return dist.get_rank(self.group)

    @property
    def world_size(self) -> int:
        """Number of ranks in the group."""
        return dist.get_world_size(self.group)

    def __repr__(self) -> str:
        return f"GradientReducer(rank={self.rank}, world_size={self.world_size}, check={self.check})"

    # ------------------------------------------------------------------------------ reductions
    def _average(self, tensors: Sequence[torch.Tensor], *, mean: bool = True) -> list[torch.Tensor]:
        """New tensors: the mean (or with ``mean=False`` the sum) over ranks of each of ``tensors``."""
        out: list[torch.Tensor | None] = [None] * len(tensors)
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, t in enumerate(tensors):
            if t.is_sparse:
                raise TypeError("GradientReducer does not reduce sparse tensors")
            groups.setdefault((t.device, t.dtype), []).append(i)
        for indices in groups.values():
            bucket: list[int] = []
            size = 0
            for i in indices:
                bucket.append(i)
                size += tensors[i].numel() * tensors[i].element_size()
                if size >= self._bucket_bytes:
                    self._average_bucket(tensors, bucket, out, mean)
                    bucket, size = [], 0
            if bucket:
                self._average_bucket(tensors, bucket, out, mean)
        return out  # type: ignore[return-value]

    def _average_bucket(self, tensors: Sequence[torch.Tensor], bucket: list[int], out: list, mean: bool) -> None:
        flat = torch.cat([tensors[i].detach().reshape(-1) for i in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        if mean:
            flat.div_(self.world_size)
        offset = 0
        for i in bucket:
            n = tensors[i].numel()
            out[i] = flat[offset:offset + n].view_as(tensors[i])
            offset += n

    def __call__(self, grads: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean over ranks of every tensor of ``grads`` (a new dict; the input is not modified).

        This is the ``reduce_grads`` of :func:`enot.functional.pretrain_step` and ``search_step``.

        Raises:
            DistributedStepError: If ``check`` and the ranks hold different names or sizes.
        """
        names = sorted(grads)
        if self.check:
            self.agree(fingerprint([(n, tuple(grads[n].shape)) for n in names]), what="gradients")
        return dict(zip(names, self._average([grads[n] for n in names])))

    reduce_grads = __call__

    def reduce_buffers(
        self, buffers: Mapping[str, torch.Tensor], *, sum_counters: bool = False
    ) -> dict[str, torch.Tensor]:
        """Floating-point buffers averaged over ranks (a new dict; the input is not modified).

        Integer buffers (batch-norm's ``num_batches_tracked``) are returned as given, or with
        ``sum_counters`` summed over ranks (after batch-norm tuning: the batches all ranks saw).
        Averaging batch-norm running means over equal per-rank batches gives the running mean of the
        global batch; running variances get the mean of the per-rank variances.
        """
        floating = sorted(n for n, t in buffers.items() if t.is_floating_point())
        counters = sorted(n for n, t in buffers.items() if not t.is_floating_point()) if sum_counters else []
        result = dict(buffers)
        if self.check:
            self.agree(fingerprint([(n, tuple(buffers[n].shape)) for n in floating + counters]), what="buffers")
        result.update(zip(floating, self._average([buffers[n] for n in floating])))
        result.update(zip(counters, self._average([buffers[n] for n in counters], mean=False)))
        return result

    @torch.no_grad()
    def reduce_grads_(self, params: Iterable[torch.Tensor]) -> None:
        """Averages ``p.grad`` over ranks in place, for every ``p`` of ``params`` whose grad is not ``None``."""
        with_grad = [p for p in params if p.grad is not None]
        for p, mean in zip(with_grad, self._average([p.grad for p in with_grad])):
            p.grad.copy_(mean)

    @torch.no_grad()
    def reduce_buffers_(self, buffers: Iterable[torch.Tensor], *, sum_counters: bool = False) -> None:
        """Averages floating-point ``buffers`` over ranks in place; integer ones are left alone, or
        summed with ``sum_counters`` (see :meth:`reduce_buffers`)."""
        buffers = list(buffers)
        floating = [b for b in buffers if b.is_floating_point()]
        for b, mean in zip(floating, self._average(floating)):
            b.copy_(mean)
        if sum_counters:
            counters = [b for b in buffers if not b.is_floating_point()]
            for b, total in zip(counters, self._average(counters, mean=False)):
                b.copy_(total)

    @torch.no_grad()
    def broadcast_(self, tensors: Iterable[torch.Tensor], src: int = 0) -> None:
        """Copies ``tensors`` of rank ``src`` (a global rank) into every rank's, in place."""
        for t in tensors:
            dist.broadcast(t.data, src=src, group=self.group)

    # ------------------------------------------------------------------------------- agreement
    def agree(self, value: int, *, what: str, step: int = -1, error: BaseException | None = None) -> None:
        """One all-gather that checks every rank is at the same step with the same ``value`` and none failed.

        Every rank must call it at the same point, also a rank whose step raised (with ``error``):
        then every other rank raises :class:`DistributedStepError` naming the failed rank and its
        error, and the failed rank returns so that its caller re-raises the original error.

        Args:
            value: A :func:`fingerprint` of what the ranks must agree on (architectures, names).
            what: Words for the error message ("sampled architectures"...).
            step: The optimizer step, also compared (``-1`` when not tracked).
            error: The exception this rank raised, if any.

        Raises:
            DistributedStepError: If another rank failed, or ranks differ in step or ``value``.
        """
        world = self.world_size
        row = torch.tensor([int(error is not None), step, value, 0], dtype=torch.int64)
        rows = [torch.empty_like(row) for _ in range(world)]
        dist.all_gather(rows, row, group=self.group)
        failed = [r for r in range(world) if int(rows[r][0])]
        if failed:
            messages: list[Any] = [None] * world
            mine = None if error is None else f"{type(error).__name__}: {error}"
            dist.all_gather_object(messages, mine, group=self.group)
            if error is not None:
                return
            details = "; ".join(f"rank {r} raised {messages[r]}" for r in failed)
            raise DistributedStepError(
                f"rank {self.rank} stops because another rank failed during the step ({details}); "
                "no rank applied this step's update"
            )
        steps = [int(r[1]) for r in rows]
        values = [int(r[2]) for r in rows]
        if len(set(steps)) > 1:
            raise DistributedStepError(
                f"ranks are at different steps {steps}: every rank must call model_step/step the same number "
                "of times (give each rank the same number of batches, e.g. DistributedSampler(drop_last=True))"
            )
        if len(set(values)) > 1:
            raise DistributedStepError(
                f"ranks disagree on the {what} (fingerprints by rank: {values}); every rank must build the "
                "same search space and use the same seed, and must not wrap it in DistributedDataParallel"
            )
