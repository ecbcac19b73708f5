"""Overhead of `EnotPretrainOptimizer.step` against a plain PyTorch step of the extracted path.

Prints, for a small MobileNet-like space on 32x32 inputs with batch 64, the median time of one
pretrain step per trained path divided by the median time of one plain training step of the
extracted network of the same path (interleaved: ours, plain, ours, plain...), and the same
ratio for peak memory.  Target: time ratio <= 1.05, memory ratio <= 1.1.  It also times alone the
step's guards (the finite check of the gradients, the snapshot that a failed step is restored
from, the check of the sampled architecture) as a share of the enot step, and counts the data the
snapshot copies in a step: it is copy-on-write, so only the tensors the step writes (the batch-norm
statistics of the sampled path) are copied, against every buffer for an eager copy.  Target: each
guard at most 1% of a step.

    python benchmarks/pretrain_overhead.py [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as Fn
from _measure import median_ratio, mobilenet_space, peak_bytes, plain_step, seconds

import enot.functional as ef
from enot.optimize import EnotPretrainOptimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = mobilenet_space()
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    space.initialize_output_distribution_optimization(x)
    enot_opt = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.01, momentum=0.9), seed=0)

    def closure():
        loss = Fn.cross_entropy(space(x), y)
        loss.backward()
        return loss

    def enot_step():
        enot_opt.zero_grad()
        enot_opt.step(closure)

    key, nets = ef.random.key(0), {}
    time_pairs, memory_pairs, guard_pairs = [], [], []
    for r in range(args.repeats + 3):
        key, (arch,) = ef.next_architectures(key, space.layout.n_choices, "uniform")
        if tuple(arch) not in nets:
            net = space.get_network_by_indexes(arch).train()
            nets[tuple(arch)] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
        net, opt = nets[tuple(arch)]
        plain_step(net, opt, x, y)  # warm the plain network's allocator and momentum state
        if r < 3:
            enot_step()
            continue
        ours = seconds(enot_step)
        assert enot_opt.last_architectures == [arch]
        # The step's guards (issue 12), included in `ours`, timed alone: the finite check of every
        # gradient the wrapped optimizer will apply, and the snapshot taken before the closure
        # (after zero_grad, as in the step: buffers copied, no gradient to copy).
        check = seconds(lambda: enot_opt._check_finite_grads("benchmark", "weights"))
        enot_opt.zero_grad()
        snapshot = seconds(enot_opt._snapshot)
        check_arch = seconds(lambda: space.sample(arch))
        guard_pairs.append((check, snapshot, ours, check_arch))
        ref = seconds(lambda: plain_step(net, opt, x, y))
        time_pairs.append((ours, ref))
        if r < 8:
            # The memory run samples one more architecture: measure the plain step of that one.
            key, (arch,) = ef.next_architectures(key, space.layout.n_choices, "uniform")
            if tuple(arch) not in nets:
                net = space.get_network_by_indexes(arch).train()
                nets[tuple(arch)] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
            net, opt = nets[tuple(arch)]
            plain_step(net, opt, x, y)
            mem_ours = peak_bytes(enot_step)
            assert enot_opt.last_architectures == [arch]
            memory_pairs.append((mem_ours, peak_bytes(lambda: plain_step(net, opt, x, y))))
    copied = _count_copies(enot_opt, enot_step, steps=5)  # after the loop, which replays the sampler's keys
    t_ours, t_ref, t_ratio = median_ratio(time_pairs)
    m_ours, m_ref, m_ratio = median_ratio(memory_pairs)
    print(f"threads={torch.get_num_threads()} batch={args.batch} repeats={len(time_pairs)}")
    print(f"{'metric':<38}{'enot':>12}{'plain':>12}{'ratio':>8}{'target':>8}")
    print(f"{'pretrain step per path (ms)':<38}{t_ours * 1e3:>12.2f}{t_ref * 1e3:>12.2f}{t_ratio:>8.3f}{'<=1.05':>8}")
    print(f"{'peak memory per path (MiB)':<38}{m_ours / 2**20:>12.2f}{m_ref / 2**20:>12.2f}{m_ratio:>8.3f}{'<=1.1':>8}")
    for label, index in (("finite-gradient check", 0), ("failure snapshot", 1), ("architecture check", 3)):
        part, step, share = median_ratio([(g[index], g[2]) for g in guard_pairs])
        print(f"{label + ' / enot step (ms)':<38}{part * 1e3:>12.3f}{step * 1e3:>12.2f}{share:>8.4f}{'<=0.01':>8}")
    lazy, eager = (sum(c[i] for c in copied) / len(copied) / 2**10 for i in (0, 1))
    print(f"{'snapshot data copied per step (KiB)':<38}{lazy:>12.1f}{eager:>12.1f}{lazy / eager:>8.3f}"
          f"{'(lazy / eager)':>16}")


def _count_copies(enot_opt, enot_step, steps: int) -> list[tuple[int, int]]:
    """Runs ``steps`` steps; per step: (bytes the copy-on-write snapshot copied during the step, bytes
    an eager copy of the buffers and existing gradients would have copied)."""
    counts, taken = [], []
    snapshot, run = enot_opt._snapshot, enot_opt._run_closure_guarded

    def spy_snapshot():
        taken.append(snapshot())
        return taken[-1]

    def spy_run(closure):
        result = run(closure)
        snap = taken.pop()
        pairs = snap["params"] + snap["buffers"] + snap["grads"]
        cow = getattr(torch._C, "_is_cow_tensor", None)
        written = sum(t.nbytes for t, _ in pairs if cow is None or not cow(t))  # materialised: copied
        eager = sum(b.nbytes for b, _ in snap["buffers"]) + sum(g.nbytes for _, g in snap["grads"])
        counts.append((written, eager))
        return result

    enot_opt._snapshot, enot_opt._run_closure_guarded = spy_snapshot, spy_run
    try:
        for _ in range(steps):
            enot_step()
    finally:
        del enot_opt._snapshot, enot_opt._run_closure_guarded  # the class's methods again
    return counts


if __name__ == "__main__":
    main()
