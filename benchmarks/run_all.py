"""Every performance target of the library in one table: ours against plain PyTorch, same run.

Runs on the small MobileNet-like space of `_measure.mobilenet_space` (32x32 inputs, batch 64) and
prints, per metric, our figure, the plain-PyTorch reference, their ratio and the target.  Timed
figures are medians of interleaved repeats (ours, reference, ours, reference...); the ratio is the
median of the per-pair ratios.  Nothing here asserts: the table is the result.

    python benchmarks/run_all.py [--repeats 15] [--threads N] [--device cpu|cuda|all] [--compile]

`--compile` adds the compiled functional pretrain step (`make_apply(compile=True)`): the first run
compiles one graph per candidate and segment (minutes on a small CPU; Inductor caches them on disk,
so later runs start faster).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as Fn
from _measure import OPS, median_ratio, mobilenet_space, peak_bytes, selection_ms

import enot.functional as ef

Row = tuple[str, str, str, str, str]
SELECTION_TARGET_MS = 10.0


def _loss(output, batch):
    return Fn.cross_entropy(output, batch[1])


class Bench:
    """One device's measurements; every `row_*` method returns table rows."""

    def __init__(self, device: str, batch: int, repeats: int) -> None:
        self.device, self.repeats = torch.device(device), repeats
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, 3, 32, 32, generator=g).to(self.device)
        self.y = torch.randint(0, 10, (batch,), generator=g).to(self.device)
        self.batches = [(self.x, self.y)]

    # ----------------------------------------------------------------------------- helpers
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], object]) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start

    def peak(self, fn: Callable[[], object]) -> int:
        if self.device.type != "cuda":
            return peak_bytes(fn)
        self.sync()
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        fn()
        self.sync()
        return torch.cuda.max_memory_allocated(self.device) - base

    def space(self, ops: list[str] = OPS) -> torch.nn.Module:
        space = mobilenet_space(ops).to(self.device)
        space.initialize_output_distribution_optimization(self.x)
        return space

    def plain(self, space, arch: list[int], nets: dict) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The extracted network of `arch` with its own SGD (cached per architecture)."""
        if tuple(arch) not in nets:
            net = space.get_network_by_indexes(arch).to(self.device).train()
            nets[tuple(arch)] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
        return nets[tuple(arch)]

    def plain_step(self, net, opt) -> None:
        opt.zero_grad()
        Fn.cross_entropy(net(self.x), self.y).backward()
        opt.step()

    def pretrain_pairs(self, apply, space, *, memory: bool = False, warmup: int = 3, sampler: str = "uniform",
                       share_prefix: bool = False) -> list[tuple[float, float]]:
        """(ours per path, plain step of one sampled path) pairs for `ef.pretrain_step`."""
        trees = ef.split_search_space(space)
        opt = ef.sgd(0.01, momentum=0.9)
        state = ef.pretrain_init(trees.params, trees.buffers, opt, ef.random.key(0))
        nets, pairs = {}, []
        extra = {"share_prefix": True} if share_prefix else {}
        for r in range(warmup + self.repeats):
            _, archs = ef.next_architectures(state.key, space.layout.n_choices, sampler)
            net, net_opt = self.plain(space, archs[0], nets)
            self.plain_step(net, net_opt)  # warm the plain network (allocator, momentum state)
            out = {}

            def ours():
                out["state"], _ = ef.pretrain_step(apply, opt, _loss, state, self.batches,
                                                  sampler=sampler, **extra)

            measure = self.peak if memory else self.time
            t_ours = measure(ours) / len(archs)
            t_ref = measure(lambda: self.plain_step(net, net_opt))
            state = out["state"]
            if r >= warmup:
                pairs.append((t_ours, t_ref))
        return pairs

    # --------------------------------------------------------------------------------- rows
    def row_pretrain_eager(self) -> list[Row]:
        space = self.space()
        ours, ref, ratio = median_ratio(self.pretrain_pairs(ef.make_apply(space), space))
        return [("eager pretrain step per path / plain step (ms)", f"{ours * 1e3:.1f}", f"{ref * 1e3:.1f}", f"{ratio:.3f}", "<= 1.03")]

    def row_pretrain_facade(self) -> list[Row]:
        """`EnotPretrainOptimizer.step` (guards included: finite-gradient check, copy-on-write failure
        snapshot, architecture check) per path against a plain step of the same path."""
        from enot.optimize import EnotPretrainOptimizer

        space = self.space()
        enot_opt = EnotPretrainOptimizer(space, torch.optim.SGD(space.model_parameters(), lr=0.01, momentum=0.9), seed=0)

        def closure():
            Fn.cross_entropy(space(self.x), self.y).backward()

        def ours():
            enot_opt.zero_grad()
            enot_opt.step(closure)

        nets, pairs, key = {}, [], ef.random.key(0)  # replays the optimizer's sampler to know its path
        for r in range(3 + self.repeats):
            key, (arch,) = ef.next_architectures(key, space.layout.n_choices, "uniform")
            net, net_opt = self.plain(space, arch, nets)
            self.plain_step(net, net_opt)
            t_ours = self.time(ours)
            t_ref = self.time(lambda: self.plain_step(net, net_opt))
            if r >= 3:
                pairs.append((t_ours, t_ref))
        ours_t, ref, ratio = median_ratio(pairs)
        return [("EnotPretrainOptimizer step per path / plain step (ms)", f"{ours_t * 1e3:.1f}", f"{ref * 1e3:.1f}",
                 f"{ratio:.3f}", "<= 1.03")]

    def row_pretrain_compiled(self) -> list[Row]:
        space = self.space()
        apply = ef.make_apply(space, compile=True)
        trees = ef.split_search_space(space)
        start = time.perf_counter()
        for arch in ef.fair_architectures(ef.random.key(0), space.layout.n_choices):  # every candidate compiles once
            ef.path_gradients(apply, trees.params, trees.buffers, arch, _loss, self.batches[0])
        compile_s = time.perf_counter() - start
        ours, ref, ratio = median_ratio(self.pretrain_pairs(apply, space))
        return [(f"compiled pretrain step per path / plain eager step (ms; compile {compile_s:.0f} s)",
                 f"{ours * 1e3:.1f}", f"{ref * 1e3:.1f}", f"{ratio:.3f}", "<= 0.83")]

    def row_shared_prefix(self) -> list[Row]:
        space = self.space()
        apply = ef.make_apply(space)
        shared = median_ratio(self.pretrain_pairs(apply, space, sampler="fair", share_prefix=True, warmup=1))
        separate = median_ratio(self.pretrain_pairs(apply, space, sampler="fair", warmup=1))
        return [
            ("fair step per path, prefix shared / plain step (ms)", f"{shared[0] * 1e3:.1f}", f"{shared[1] * 1e3:.1f}", f"{shared[2]:.3f}", "< unshared"),
            ("fair step per path, unshared / plain step (ms)", f"{separate[0] * 1e3:.1f}", f"{separate[1] * 1e3:.1f}", f"{separate[2]:.3f}", "(reference)"),
        ]

    def row_search(self) -> list[Row]:
        space = self.space()
        trees = ef.split_search_space(space)
        apply = ef.make_apply(space)
        opt = ef.adam(0.05)
        state = ef.search_init(trees.buffers, trees.logits, opt, ef.random.key(1))
        pairs, nets = [], {}
        for r in range(2 + self.repeats):
            out = {}

            def ours():
                out["s"], out["info"] = ef.search_step(apply, opt, _loss, trees.params, state, self.batches)

            t_ours = self.time(ours)
            state = out["s"]
            net, _ = self.plain(space, out["info"]["samples"][0].architecture, nets)

            def ref():
                net.zero_grad()
                Fn.cross_entropy(net(self.x), self.y).backward()

            ref()
            if r >= 2:
                pairs.append((t_ours, self.time(ref)))
        ours, ref_t, ratio = median_ratio(pairs)
        return [("search step / one path fwd+bwd (ms)", f"{ours * 1e3:.1f}", f"{ref_t * 1e3:.1f}", f"{ratio:.3f}", "<= 1.5")]

    def row_memory(self, counts=(2, 4, 8, 16)) -> list[Row]:
        rows, ratios = [], []
        repeats, self.repeats = self.repeats, 3
        try:
            for n in counts:
                ops = [OPS[i % len(OPS)] for i in range(n)]
                space = self.space(ops)
                ours, ref, ratio = median_ratio(self.pretrain_pairs(ef.make_apply(space), space, memory=True, warmup=1))
                ratios.append(ratio)
                rows.append((f"peak memory pretrain per path / plain, {n} candidates (MiB)",
                             f"{ours / 2**20:.1f}", f"{ref / 2**20:.1f}", f"{ratio:.3f}", "<= 1.1"))
            space = self.space()
            trees = ef.split_search_space(space)
            opt = ef.adam(0.05)
            state = ef.search_init(trees.buffers, trees.logits, opt, ef.random.key(1))
            apply, pairs, nets = ef.make_apply(space), [], {}
            for _ in range(4):
                out = {}
                mem = self.peak(lambda: out.update(zip(("s", "info"), ef.search_step(
                    apply, opt, _loss, trees.params, state, self.batches))))
                state = out["s"]
                net, net_opt = self.plain(space, out["info"]["samples"][0].architecture, nets)
                self.plain_step(net, net_opt)
                pairs.append((mem, self.peak(lambda: self.plain_step(net, net_opt))))
            ours, ref, ratio = median_ratio(pairs)
            rows.append(("peak memory search step / plain step (MiB)", f"{ours / 2**20:.1f}", f"{ref / 2**20:.1f}", f"{ratio:.3f}", "<= 1.1"))
        finally:
            self.repeats = repeats
        rows.append(("peak memory ratio growth, 2 -> 16 candidates", f"{ratios[-1]:.3f}", f"{ratios[0]:.3f}",
                     f"{ratios[-1] / ratios[0]:.3f}", "flat (~1.0)"))
        return rows

    def row_bn_tune(self, k: int = 8) -> list[Row]:
        space = self.space()
        trees = ef.split_search_space(space)
        bn_batches = [(self.x, self.y)] * k
        pairs, nets = [], {}
        for r in range(2 + self.repeats):
            arch = ef.uniform_architecture(ef.random.key(r), space.layout.n_choices)
            net, _ = self.plain(space, arch, nets)

            def ref():
                with torch.no_grad():
                    for inputs, _ in bn_batches:
                        net(inputs)

            t_ours = self.time(lambda: ef.bn_tune(space, trees.params, trees.buffers, bn_batches, architecture=arch))
            t_ref = self.time(ref)
            if r >= 2:
                pairs.append((t_ours, t_ref))
        ours, ref_t, ratio = median_ratio(pairs)
        return [(f"BN tuning of {k} batches / {k} no-grad forwards (ms)", f"{ours * 1e3:.1f}", f"{ref_t * 1e3:.1f}", f"{ratio:.3f}", "<= 1.1")]


def selection_rows() -> list[Row]:
    worst = {}
    for n in (20, 50):
        times = [t for correlated in (False, True) for t in selection_ms(n, correlated, repeats=7)]
        worst[n] = max(times)
    return [
        ("exact selection 20x10, worst of 8 cases (ms)", f"{worst[20]:.1f}", "-", "-", f"< {SELECTION_TARGET_MS:.0f} ms"),
        ("exact selection 50x10, worst of 8 cases (ms)", f"{worst[50]:.1f}", "-", "-", "(no target)"),
    ]


def print_table(title: str, rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print(f"| {'metric':<{width}} | {'ours':>8} | {'plain':>8} | {'ratio':>6} | target |")
    print(f"| {'-' * width} | {'-' * 8} | {'-' * 8} | {'-' * 6} | --- |")
    for r in rows:
        print(f"| {r[0]:<{width}} | {r[1]:>8} | {r[2]:>8} | {r[3]:>6} | {r[4]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--compile", action="store_true", help="also measure the compiled functional step (slow first run)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="subset of: pretrain facade compiled shared search memory bn selection")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    wanted = set(args.only or ["pretrain", "facade", "compiled", "shared", "search", "memory", "bn", "selection"])
    if not args.compile:
        wanted.discard("compiled")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 32x32 inputs, "
          f"{args.repeats} interleaved repeats" + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    for device in devices:
        bench = Bench(device, args.batch, args.repeats)
        rows: list[Row] = []
        for name, method in (("pretrain", bench.row_pretrain_eager), ("facade", bench.row_pretrain_facade),
                             ("compiled", bench.row_pretrain_compiled),
                             ("shared", bench.row_shared_prefix), ("search", bench.row_search),
                             ("memory", bench.row_memory), ("bn", bench.row_bn_tune)):
            if name in wanted:
                rows += method()
        if "selection" in wanted and device == "cpu":
            rows += selection_rows()
        if "compiled" not in wanted:
            rows.append(("compiled pretrain step per path / plain eager step", "skipped", "-", "-", "<= 0.83 (--compile)"))
        print_table(f"device {device}", rows)


if __name__ == "__main__":
    main()
