"""Evolution vs gradient search on the ground-truth benchmark: quality and wall time at the same bounds.

Uses the ground truth and the public-API pipeline of `benchmarks/search_quality.py`
(`benchmarks/ground_truth/`, 343 architectures trained stand-alone).  For every seed the supernet is
pretrained once exactly as there; then, for each of the 3 latency bounds, on copies of it:

* **gradient**: `EnotFixedLatencySearchOptimizer` + `prepare_validation_model()` (search_quality's `_search`);
* **evolution PxS**: `enot.optimize.EvolutionSearch(space, val_accuracy, S, max_latency_value=bound,
  population_size=P, bn_tune_dataloader=train loader, bn_tune_batches=10)`: every architecture scored
  by its val accuracy on the supernet, batch norm recalibrated on the first 10 train batches;
* **supernet, all feasible scored**: the same score for every feasible architecture (extracted path,
  `tune_bn_stats` on the same 10 batches), best taken: what an evolution with unlimited budget would
  pick (its ceiling).

The picks are scored by the ground truth (regret in pp, percentile, budget use), as in search_quality.py.

    python benchmarks/evolution_quality.py                       # 3 seeds, 40 pretrain epochs, P x S = 10x5 and 20x10
    python benchmarks/evolution_quality.py --seeds 1 --pretrain-epochs 10 --budgets 20x10
    python benchmarks/evolution_quality.py --seeds 5 --cache /tmp/sq-cache --json /tmp/evo.json  # reuse search_quality's supernets
    python benchmarks/evolution_quality.py --aggregate /tmp/evo.json [more.json ...]

(Regrets are computed when a search runs, against the table of that moment.)
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "ground_truth"))
from search_quality import TABLE, _accuracy, _figures, _load_table, _pretrained, _search, _summary, _supernet_scores  # noqa: E402
from space import bounds as latency_bounds  # noqa: E402
from space import load_data

from enot.optimize import EvolutionSearch  # noqa: E402


def _evolve(space, bound: float, data: dict, bn_loader, population: int, steps: int, seed: int) -> tuple[tuple[int, ...], dict]:
    x_val, y_val = data["val"]
    search = EvolutionSearch(
        space, lambda model: _accuracy(model, x_val, y_val), steps, max_latency_value=bound,
        population_size=population, seed=seed, bn_tune_dataloader=bn_loader, bn_tune_batches=10,
    )
    architecture, metrics = search.find_best_arch(return_metrics=True)
    return tuple(architecture), metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="pipeline seeds first-seed .. first-seed+N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the per-search records here")
    parser.add_argument("--aggregate", type=Path, nargs="+", help="print the tables of --json files (runs in parallel)")
    parser.add_argument("--pretrain-epochs", type=int, default=40)
    parser.add_argument("--search-epochs", type=int, default=20, help="epochs of the gradient search")
    parser.add_argument("--budgets", default="10x5,20x10", help="evolution population x steps, comma-separated")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pretrain-options", type=json.loads, default={},
                        help="EnotPretrainOptimizer options as JSON (as search_quality.py)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of pretrained supernets shared with search_quality.py --cache (reused when present)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.aggregate:
        records = [r for path in args.aggregate for r in json.loads(path.read_text())]
        _report(records, sorted({r["seed"] for r in records}))
        return
    budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets.split(",")]
    start = time.perf_counter()
    table = _load_table(TABLE)
    data = load_data()
    bn_loader = DataLoader(TensorDataset(*data["train"]), batch_size=64)
    bounds = latency_bounds([r["mmac"] for r in table.values()])
    architectures = sorted(table)
    names = ["gradient"] + [f"evolution {p}x{s}" for p, s in budgets] + ["supernet, all feasible scored"]
    records: list[dict] = []
    print(f"bounds {[round(b, 4) for b in bounds]}; pretrain {args.pretrain_epochs} epochs; gradient search "
          f"{args.search_epochs} epochs; evolution budgets {args.budgets}; seeds {args.seeds}", flush=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for seed in seeds:
        t0 = time.perf_counter()
        space, _ = _pretrained(seed, data, args)
        print(f"seed {seed}: pretrain {time.perf_counter() - t0:.0f} s", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        scores = _supernet_scores(space, architectures, data, bn_loader, bn_batches=10)
        scoring, scoring_cpu = time.perf_counter() - t0, time.process_time() - c0
        for bound in bounds:
            feasible = [a for a in architectures if table[a]["mmac"] <= bound]
            best_score = max(scores[a] for a in feasible)
            line = []

            def record(name: str, arch: tuple[int, ...], seconds: float, scored: int, hit: bool | None,
                       cpu: float | None = None) -> None:
                figures = _figures(arch, bound, table)
                records.append({"seed": seed, "bound": bound, "selector": name, "architecture": list(arch),
                                "seconds": seconds, "cpu": cpu, "scored": scored, "hit": hit, **figures})
                line.append(f"{name} {list(arch)} {figures['regret']:.2f} pp ({seconds:.1f} s)")

            t0, c0 = time.perf_counter(), time.process_time()
            pick = tuple(_search(copy.deepcopy(space), bound, data, bn_loader, args.search_epochs, seed, {})[0])
            record("gradient", pick, time.perf_counter() - t0, 0, None, time.process_time() - c0)
            for (p, s), name in zip(budgets, names[1:-1]):
                t0, c0 = time.perf_counter(), time.process_time()
                pick, metrics = _evolve(copy.deepcopy(space), bound, data, bn_loader, p, s, seed)
                record(name, pick, time.perf_counter() - t0, metrics["evaluations"], metrics["metric"] >= best_score,
                       time.process_time() - c0)
            record("supernet, all feasible scored", max(feasible, key=lambda a: scores[a]),
                   scoring * len(feasible) / len(architectures), len(feasible), None,
                   scoring_cpu * len(feasible) / len(architectures))
            print(f"  bound {bound:.4f} ({len(feasible)} feasible): " + "; ".join(line), flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    _report(records, seeds)
    print(f"wall time: total {time.perf_counter() - start:.0f} s")


def _report(records: list[dict], seeds: list[int]) -> None:
    names = list(dict.fromkeys(r["selector"] for r in records))
    n_bounds = len({r["bound"] for r in records})
    print(f"\nseeds {seeds} x {n_bounds} bounds; regret in pp of mean stand-alone test accuracy vs the best feasible")
    print("| selector | mean regret | worst regret | mean percentile | median budget use | lowest budget use |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        print(_summary(name, [r for r in records if r["selector"] == name]))
    print("\n| selector | mean wall s per search | mean CPU s per search | mean architectures scored | "
          "picks scoring the exhaustive supernet maximum |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        mine = [r for r in records if r["selector"] == name]
        scored = f"{statistics.fmean(r['scored'] for r in mine):.1f}" if mine[0]["scored"] else "-"
        hit = f"{sum(bool(r['hit']) for r in mine)} / {len(mine)}" if mine[0]["hit"] is not None else "-"
        print(f"| {name} | {statistics.fmean(r['seconds'] for r in mine):.1f} | "
              f"{statistics.fmean(r['cpu'] for r in mine):.1f} | {scored} | {hit} |")
    print("(supernet, all feasible scored: its time is the share of scoring all 343 networks that the feasible ones take)")


if __name__ == "__main__":
    main()
