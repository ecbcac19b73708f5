"""Search quality against ground truth: does the public-API pipeline pick what stand-alone training would?

The space, data and stand-alone accuracies are those of `benchmarks/ground_truth/` (343 architectures
of 3 containers x 7 ops on 14x14 MNIST, each trained stand-alone with 2 seeds; see its `table.json`).
For every seed the pipeline runs as ENOT's tutorials do (closures that return nothing):
`initialize_output_distribution_optimization`, `EnotPretrainOptimizer` around SGD with a cosine
schedule on the train split, `initialize_latency('mmac')`, then for each of 3 latency bounds a copy of
the pretrained supernet is searched with `EnotFixedLatencySearchOptimizer` (Adam on the architecture
logits, search split = val, batch-norm tuning on the train split with the documented defaults 10/50)
and `prepare_validation_model()` gives the pick.  The pick is scored by the ground truth (mean
stand-alone test accuracy): regret = best feasible minus pick, in percentage points.  Printed beside
it, on the same table and bounds: reference selectors (random feasible, largest that fits, best
stand-alone validation accuracy, best BN-tuned supernet score among feasible) and the Kendall tau
between the BN-tuned supernet's validation accuracy and the ground truth over all architectures (each
path extracted, its batch norm recalibrated on `--score-bn-batches` train batches, scored on val).

    python benchmarks/search_quality.py                 # 3 seeds, 40 pretrain epochs (~10-15 min, 1 core)
    python benchmarks/search_quality.py --seeds 1 --pretrain-epochs 10
    python benchmarks/search_quality.py --quick         # 1 seed, 3 pretrain epochs, tau on 100 architectures
    python benchmarks/search_quality.py --tau-only --pretrain-epochs 10 --pretrain-options '{"sampler": "sandwich"}'

(`python benchmarks/...` imports the installed `enot`; from a git worktree prefix `PYTHONPATH=$PWD`.
The header line names the `enot` it imported.)
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
import torch.nn.functional as Fn
from scipy.stats import kendalltau
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent / "ground_truth"))
from space import OPS, QUANTILES, bounds as latency_bounds, build_search_space, load_data  # noqa: E402

import enot  # noqa: E402
from enot.latency import initialize_latency  # noqa: E402
from enot.optimize import EnotFixedLatencySearchOptimizer, EnotPretrainOptimizer  # noqa: E402
from enot.utils import tune_bn_stats  # noqa: E402

TABLE = Path(__file__).resolve().parent / "ground_truth" / "table.json"


def _load_table(path: Path) -> dict[tuple[int, ...], dict]:
    rows = json.loads(path.read_text())["architectures"]
    return {tuple(r["architecture"]): r for r in rows}


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def _pretrain(seed: int, data: dict, epochs: int, batch: int, options: dict | None = None) -> torch.nn.Module:
    x_train, y_train = data["train"]
    space = build_search_space(seed)
    initialize_latency("mmac", space, (x_train[:1],))
    space.initialize_output_distribution_optimization(x_train[:256])
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(space.model_parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    options = dict(options or {})
    enot_optimizer = EnotPretrainOptimizer(space, optimizer, seed=seed, **options)
    distill = options.get("sampler") == "sandwich" and options.get("distill", True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(enot_optimizer, T_max=max(1, epochs * len(loader)))
    space.train()
    for _ in range(epochs):
        for inputs, labels in loader:
            enot_optimizer.zero_grad()

            if distill:  # in-place distillation: the opt-in modify_loss turns a student path's loss into KD

                def closure() -> None:
                    enot_optimizer.modify_loss(Fn.cross_entropy(space(inputs), labels)).backward()
            else:

                def closure() -> None:
                    Fn.cross_entropy(space(inputs), labels).backward()

            enot_optimizer.step(closure)
            scheduler.step()
    return space


def _search(
    space: torch.nn.Module, bound: float, data: dict, bn_loader: DataLoader, epochs: int, seed: int,
    estimator: str = "two_path", top_k: int = 1, bn_scheme: str = "fresh",
) -> tuple[list[int], list[int] | None]:
    """The pick of ``prepare_validation_model()`` and, with ``top_k > 1``, that of the top-K rule
    (validation_score = accuracy on the val split, the search split); the first is then its most
    probable candidate, which is what the default rule picks."""
    x_val, y_val = data["val"]
    loader = DataLoader(TensorDataset(x_val, y_val), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(space.architecture_parameters(), lr=0.1)
    pick_options = {"validation_top_k": top_k, "validation_score": lambda ss: _accuracy(ss, x_val, y_val)} if top_k > 1 else {}
    enot_optimizer = EnotFixedLatencySearchOptimizer(space, optimizer, bound, bn_tune_dataloader=bn_loader,
                                                     estimator=estimator, bn_scheme=bn_scheme, **pick_options)
    for _ in range(epochs):
        for inputs, labels in loader:
            enot_optimizer.zero_grad()

            def closure() -> None:
                enot_optimizer.modify_loss(Fn.cross_entropy(space(inputs), labels)).backward()

            enot_optimizer.step(closure)
    pick = enot_optimizer.prepare_validation_model()
    if top_k == 1:
        return pick, None
    return enot_optimizer.last_validation_pick.candidates[0], pick


def _supernet_scores(space, architectures, data, bn_loader, bn_batches: int) -> dict[tuple[int, ...], float]:
    """Validation accuracy of each architecture's path, extracted and batch-norm tuned on the train split."""
    scores = {}
    for arch in architectures:
        net = space.get_network_by_indexes(list(arch))
        tune_bn_stats(net, bn_loader, n_steps=bn_batches)
        scores[arch] = _accuracy(net, *data["val"])
    return scores


def _figures(pick: tuple[int, ...], bound: float, table: dict) -> dict:
    feasible = [r["mean_test_accuracy"] for r in table.values() if r["mmac"] <= bound]
    acc = table[pick]["mean_test_accuracy"]
    if table[pick]["mmac"] > bound:
        raise RuntimeError(f"pick {list(pick)} exceeds the bound: {table[pick]['mmac']} > {bound}")
    return {
        "regret": 100 * (max(feasible) - acc),
        "percentile": 100 * sum(a <= acc for a in feasible) / len(feasible),
        "use": table[pick]["mmac"] / bound,
    }


def _summary(name: str, rows: list[dict]) -> str:
    regrets = [r["regret"] for r in rows]
    return (f"| {name} | {statistics.fmean(regrets):.2f} | {max(regrets):.2f} | "
            f"{statistics.fmean(r['percentile'] for r in rows):.1f} | {statistics.median(r['use'] for r in rows):.1%} | "
            f"{min(r['use'] for r in rows):.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="pipeline seeds 0..N-1 (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first..first+N-1 (to split a run)")
    parser.add_argument("--pretrain-epochs", type=int, default=40)
    parser.add_argument("--search-epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64, help="pretrain batch size")
    parser.add_argument("--score-bn-batches", type=int, default=10,
                        help="batch-norm tuning batches (of 64 train images) per architecture scored for tau")
    parser.add_argument("--tau-architectures", type=int, default=0,
                        help="score a fixed random subset of this many architectures (0: all)")
    parser.add_argument("--quick", action="store_true", help="--seeds 1 --pretrain-epochs 3 --search-epochs 2 "
                        "--tau-architectures 100 (a smoke run: figures are not comparable)")
    parser.add_argument("--pretrain-options", type=json.loads, default={},
                        help='EnotPretrainOptimizer options as JSON, e.g. \'{"sampler": "fair"}\' (default: none)')
    parser.add_argument("--tau-only", action="store_true",
                        help="pretrain and Kendall tau only (no search, no selectors): a pretrain variant in minutes")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--estimator", default="two_path", help="search estimator: two_path or first_order")
    parser.add_argument("--bn-scheme", default="fresh", help="search batch-norm tuning: fresh or cached")
    parser.add_argument("--validation-top-k", type=int, default=1, help="also report the pick of validation_top_k=K "
                        "re-ranked by val accuracy (validation_score) beside the default most probable pick")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.pretrain_epochs, args.search_epochs, args.tau_architectures = 1, 3, 2, 100
    torch.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    table = _load_table(args.table)
    data = load_data()
    bn_loader = DataLoader(TensorDataset(*data["train"]), batch_size=64)
    latencies = sorted(r["mmac"] for r in table.values())
    bounds = latency_bounds(latencies)
    architectures = sorted(table)
    scored = architectures
    if args.tau_architectures:
        perm = torch.randperm(len(architectures), generator=torch.Generator().manual_seed(0)).tolist()
        scored = sorted(architectures[i] for i in perm[: args.tau_architectures])
    truth = {a: table[a]["mean_test_accuracy"] for a in architectures}
    print(f"ground truth: {len(table)} architectures of {len(next(iter(table)))} containers x {len(OPS)} ops {OPS}, "
          f"MMAC {latencies[0]:.4f}..{latencies[-1]:.4f}; bounds {[round(b, 4) for b in bounds]} "
          f"(quantiles {QUANTILES} of all MMAC; feasible {[sum(l <= b for l in latencies) for b in bounds]})")
    print(f"pipeline: pretrain {args.pretrain_epochs} epochs, options {args.pretrain_options},"
          f" search {args.search_epochs} epochs, seeds {args.seeds}, estimator {args.estimator}, bn_scheme {args.bn_scheme}; "
          f"tau over {'all' if len(scored) == len(architectures) else len(scored)} architectures; enot from "
          f"{Path(enot.__file__).parent}", flush=True)

    rows: dict[str, list[dict]] = {k: [] for k in ["pipeline", "supernet, all feasible scored", "random feasible",
                                                   "largest that fits", "stand-alone validation accuracy"]}
    if args.validation_top_k > 1:
        rows[f"pipeline, top-{args.validation_top_k} re-ranked by val accuracy"] = []
    taus, timings = [], {"pretrain": [], "search": [], "score": []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        c0 = time.process_time()
        space = _pretrain(seed, data, args.pretrain_epochs, args.batch, args.pretrain_options)
        timings["pretrain"].append(time.perf_counter() - t0)
        timings.setdefault("pretrain_cpu", []).append(time.process_time() - c0)
        t0 = time.perf_counter()
        scores = _supernet_scores(space, scored, data, bn_loader, bn_batches=args.score_bn_batches)
        timings["score"].append(time.perf_counter() - t0)
        tau = float(kendalltau([scores[a] for a in scored], [truth[a] for a in scored]).statistic)
        taus.append(tau)
        print(f"seed {seed}: pretrain {timings['pretrain'][-1]:.0f} s (CPU {timings['pretrain_cpu'][-1]:.0f} s); BN-tuned supernet vs ground truth: "
              f"Kendall tau {tau:.3f} ({timings['score'][-1]:.0f} s)", flush=True)
        for b, bound in enumerate([] if args.tau_only else bounds):
            feasible = [a for a in architectures if table[a]["mmac"] <= bound]
            t0 = time.perf_counter()
            pick, top_pick = _search(copy.deepcopy(space), bound, data, bn_loader, args.search_epochs, seed,
                                     args.estimator, args.validation_top_k, args.bn_scheme)
            pick = tuple(pick)
            timings["search"].append(time.perf_counter() - t0)
            generator = torch.Generator().manual_seed(1000 * seed + b)
            picks = {
                "pipeline": pick,
                "random feasible": feasible[int(torch.randint(len(feasible), (1,), generator=generator))],
                "largest that fits": max(feasible, key=lambda a: table[a]["mmac"]),
                "stand-alone validation accuracy": max(feasible, key=lambda a: table[a]["mean_val_accuracy"]),
            }
            if top_pick is not None:
                picks[f"pipeline, top-{args.validation_top_k} re-ranked by val accuracy"] = tuple(top_pick)
            if len(scored) == len(architectures):
                picks["supernet, all feasible scored"] = max(feasible, key=lambda a: scores[a])
            for name, arch in picks.items():
                rows[name].append(_figures(arch, bound, table))
            f = rows["pipeline"][-1]
            print(f"  bound {bound:.4f}: pick {list(pick)} {[OPS[k] for k in pick]} mmac {table[pick]['mmac']:.4f} "
                  f"({f['use']:.1%}), regret {f['regret']:.2f} pp, percentile {f['percentile']:.1f} "
                  f"({timings['search'][-1]:.0f} s)"
                  + (f"; top-{args.validation_top_k} pick {list(top_pick)} mmac {table[tuple(top_pick)]['mmac']:.4f}, regret "
                     f"{rows[f'pipeline, top-{args.validation_top_k} re-ranked by val accuracy'][-1]['regret']:.2f} pp"
                     if top_pick is not None else ""), flush=True)
    if args.tau_only:
        print(f"Kendall tau (BN-tuned supernet val accuracy vs ground truth): mean {statistics.fmean(taus):.3f}, "
              f"per seed {[round(t, 3) for t in taus]}")
        print(f"wall time: total {time.perf_counter() - start:.0f} s (CPU {time.process_time() - cpu_start:.0f} s); per seed "
              f"pretrain {statistics.fmean(timings['pretrain']):.0f} s (CPU {statistics.fmean(timings['pretrain_cpu']):.0f} s), "
              f"scoring {statistics.fmean(timings['score']):.0f} s")
        return
    print(f"\n{args.seeds} seeds x {len(bounds)} bounds; regret in pp of mean stand-alone test accuracy vs the best "
          f"feasible; percentile among feasible (100 = best); budget use = pick MMAC / bound")
    print("| selector | mean regret | worst regret | mean percentile | median budget use | lowest budget use |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, selector_rows in rows.items():
        if selector_rows:
            print(_summary(name, selector_rows))
    expected = [statistics.fmean(100 * (max(truth[a] for a in architectures if table[a]["mmac"] <= bound) - truth[a])
                                 for a in architectures if table[a]["mmac"] <= bound) for bound in bounds]
    print(f"random feasible, exact expectation of regret per bound: {[round(e, 2) for e in expected]} pp")
    standalone_tau = float(kendalltau([table[a]["mean_val_accuracy"] for a in scored], [truth[a] for a in scored]).statistic)
    print(f"Kendall tau (BN-tuned supernet val accuracy vs ground truth): mean {statistics.fmean(taus):.3f}, "
          f"per seed {[round(t, 3) for t in taus]}; reference: stand-alone mean val accuracy vs the same "
          f"{standalone_tau:.3f}")
    print(f"wall time: total {time.perf_counter() - start:.0f} s (CPU {time.process_time() - cpu_start:.0f} s); per seed pretrain "
          f"{statistics.fmean(timings['pretrain']):.0f} s, scoring {statistics.fmean(timings['score']):.0f} s; "
          f"per search {statistics.fmean(timings['search']):.1f} s")


if __name__ == "__main__":
    main()
