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
    # several search variants on the same pretrained supernets (paired), pretraining cached, picks saved:
    python benchmarks/search_quality.py --variants '[{}, {"bn_scheme": "cached"}, {"estimator": "first_order"}]' \
        --cache /tmp/sq-cache --save /tmp/sq.json
    python benchmarks/search_quality.py --rescore /tmp/sq.json [more.json ...]   # saved picks vs the current table

A variant is a dict of `EnotFixedLatencySearchOptimizer` options (`estimator`, `bn_scheme`, ...) plus
`validation_top_k` (K > 1: `validation_score` = accuracy on the val split, which is the search split, or
minus the cross-entropy there with `"score": "loss"`) and an optional `label` (distinct per variant).
Every variant is searched from the same pretrained supernet with the same data order, so differences
between variants are paired: the summary prints each one's mean difference of regret from the first
variant with its standard error over the picks.

(`python benchmarks/...` imports the installed `enot`; from a git worktree prefix `PYTHONPATH=$PWD`.
The header line names the `enot` it imported.)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
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
from space import OPS, QUANTILES, build_search_space, load_data  # noqa: E402
from space import bounds as latency_bounds

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


@torch.no_grad()
def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(Fn.cross_entropy(model(x), y))


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


def _search(space: torch.nn.Module, bound: float, data: dict, bn_loader: DataLoader, epochs: int, seed: int,
            variant: dict) -> tuple[list[int], list[int] | None, tuple[int, int]]:
    """The pick of ``prepare_validation_model()`` and, with ``validation_top_k > 1``, that of the top-K rule
    (validation_score = accuracy on the val split, the search split); the first is then its most
    probable candidate, which is what the default rule picks.  Last, how many architectures the
    steps drew (both sides of every comparison) and how many of them were distinct."""
    x_val, y_val = data["val"]
    loader = DataLoader(TensorDataset(x_val, y_val), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(space.architecture_parameters(), lr=0.1)
    options = {k: v for k, v in variant.items() if k not in ("label", "score")}
    top_k = options.get("validation_top_k", 1)
    if top_k > 1:
        score = variant.get("score", "accuracy")
        if score == "accuracy":
            options["validation_score"] = lambda ss: _accuracy(ss, x_val, y_val)
        elif score == "loss":
            options["validation_score"] = lambda ss: -_loss(ss, x_val, y_val)
        else:
            raise ValueError(f"unknown score {score!r}; use 'accuracy' or 'loss'")
    enot_optimizer = EnotFixedLatencySearchOptimizer(space, optimizer, bound, bn_tune_dataloader=bn_loader,
                                                     seed=seed, **options)
    drawn: list[tuple[int, ...]] = []
    for _ in range(epochs):
        for inputs, labels in loader:
            enot_optimizer.zero_grad()

            def closure() -> None:
                enot_optimizer.modify_loss(Fn.cross_entropy(space(inputs), labels)).backward()

            enot_optimizer.step(closure)
            sample = enot_optimizer.last_sample
            drawn.extend([tuple(sample.architecture), tuple(sample.alternatives)])
    pick = enot_optimizer.prepare_validation_model()
    visits = (len(drawn), len(set(drawn)))
    if top_k == 1:
        return pick, None, visits
    return enot_optimizer.last_validation_pick.candidates[0], pick, visits


def _label(variant: dict) -> str:
    if "label" in variant:
        return variant["label"]
    return ", ".join(f"{k}={v}" for k, v in sorted(variant.items())) or "default"


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


REFERENCES = ("supernet, all feasible scored", "random feasible", "largest that fits", "stand-alone validation accuracy")


def _source_digest() -> str:
    """A digest of the imported `enot`'s source: a cached supernet is reused only by the same code."""
    digest = hashlib.sha256()
    for path in sorted(Path(enot.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pretrained(seed: int, data: dict, args: argparse.Namespace) -> tuple[torch.nn.Module, float]:
    """The pretrained supernet of ``seed`` and its pretraining CPU seconds, from ``--cache`` when it holds it."""
    key = json.dumps({"seed": seed, "epochs": args.pretrain_epochs, "batch": args.batch,
                      "options": args.pretrain_options}, sort_keys=True)
    path = args.cache / f"pretrain-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt" if args.cache else None
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        if saved.get("enot") != _source_digest():
            print(f"note: {path} was pretrained by other `enot` source (digest {saved.get('enot')}, now "
                  f"{_source_digest()}); reused: empty --cache after changing pretraining", flush=True)
        space = build_search_space(seed)
        initialize_latency("mmac", space, (data["train"][0][:1],))
        space.load_state_dict(saved["state"])
        return space, float(saved["cpu_seconds"])
    c0 = time.process_time()
    space = _pretrain(seed, data, args.pretrain_epochs, args.batch, args.pretrain_options)
    cpu = time.process_time() - c0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "state": space.state_dict(), "cpu_seconds": cpu, "enot": _source_digest()}, path)
    return space, cpu


def _reference_picks(table: dict, scores: dict, bound: float, seed: int, b: int) -> dict[str, tuple | None]:
    """The reference selectors' picks under ``bound`` (the ``b``-th) for pipeline seed ``seed``."""
    feasible = [a for a in sorted(table) if table[a]["mmac"] <= bound]
    generator = torch.Generator().manual_seed(1000 * seed + b)
    return {
        "random feasible": feasible[int(torch.randint(len(feasible), (1,), generator=generator))],
        "largest that fits": max(feasible, key=lambda a: table[a]["mmac"]),
        "stand-alone validation accuracy": max(feasible, key=lambda a: table[a]["mean_val_accuracy"]),
        "supernet, all feasible scored": max(feasible, key=lambda a: scores[a]) if len(scores) == len(table) else None,
    }


def _report(record: dict, table: dict) -> None:
    """Prints the summary of a run (or of a saved run against ``table``): figures of every selector."""
    architectures = sorted(table)
    truth = {a: table[a]["mean_test_accuracy"] for a in architectures}
    bounds = record["bounds"]
    labels = record["variants"]
    rows: dict[str, list[dict]] = {}
    for seed_record in record["seeds"]:
        scores = {tuple(json.loads(a)): v for a, v in seed_record["scores"].items()}
        for b, bound in enumerate(bounds[: len(seed_record["picks"])]):
            picks = {**seed_record["picks"][b], **_reference_picks(table, scores, bound, seed_record["seed"], b)}
            for name, arch in picks.items():
                if arch is not None:
                    rows.setdefault(name, []).append(_figures(tuple(arch), bound, table))
    n_seeds = len(record["seeds"])
    print(f"\n{n_seeds} seeds x {len(bounds)} bounds; regret in pp of mean stand-alone test accuracy "
          f"({table[architectures[0]]['seeds'].__len__()} seeds per network) vs the best feasible; percentile among "
          f"feasible (100 = best); budget use = pick MMAC / bound")
    print("| selector | mean regret | worst regret | mean percentile | median budget use | lowest budget use |")
    print("| --- | --- | --- | --- | --- | --- |")
    names = [n for label in labels for n in (f"pipeline: {label}", f"pipeline: {label}, top-K re-ranked")]
    for name in names + list(REFERENCES):
        if rows.get(name):
            print(_summary(name, rows[name]))
    first = f"pipeline: {labels[0]}"
    for name in names[1:]:
        if rows.get(name) and name != first:
            diffs = [r["regret"] - f["regret"] for r, f in zip(rows[name], rows[first])]
            se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
            print(f"paired: {name} minus {first}: mean regret difference {statistics.fmean(diffs):+.2f} pp "
                  f"(standard error {se:.2f}; {sum(d < 0 for d in diffs)} better, {sum(d > 0 for d in diffs)} worse "
                  f"of {len(diffs)})")
    expected = [statistics.fmean(100 * (max(truth[a] for a in architectures if table[a]["mmac"] <= bound) - truth[a])
                                 for a in architectures if table[a]["mmac"] <= bound) for bound in bounds]
    print(f"random feasible, exact expectation of regret per bound: {[round(e, 2) for e in expected]} pp")
    taus = []
    scored = architectures
    for seed_record in record["seeds"]:
        scores = {tuple(json.loads(a)): v for a, v in seed_record["scores"].items()}
        if not scores:
            continue
        scored = sorted(scores)
        taus.append(float(kendalltau([scores[a] for a in scored], [truth[a] for a in scored]).statistic))
    standalone_tau = float(kendalltau([table[a]["mean_val_accuracy"] for a in scored],
                                      [truth[a] for a in scored]).statistic)
    if taus:
        print(f"Kendall tau (BN-tuned supernet val accuracy vs ground truth): mean {statistics.fmean(taus):.3f}, "
              f"per seed {[round(t, 3) for t in taus]}; reference: stand-alone mean val accuracy vs the same "
              f"{standalone_tau:.3f}")
    visits: dict[str, list] = {}
    for seed_record in record["seeds"]:
        for label, counts in seed_record.get("visits", {}).items():
            visits.setdefault(label, []).extend(counts)
    if visits:
        print("architectures drawn per search (both sides of every step) and how many distinct: " + ", ".join(
            f"{k} {statistics.fmean(c[0] for c in v):.0f} / {statistics.fmean(c[1] for c in v):.0f}"
            for k, v in visits.items()))
    search = [t for seed_record in record["seeds"] for t in seed_record["search_seconds"]]
    if search:
        per_variant = {label: statistics.fmean(t[i] for t in search) for i, label in enumerate(labels)}
        print("search wall time per search: " + ", ".join(f"{k} {v:.1f} s" for k, v in per_variant.items()))


def _pooled(records: list[dict]) -> dict:
    """Saved runs pooled: the seeds of all, and for a seed in several runs (the same pretrained supernet:
    use the same pretrain options) the variants of all, first come first.  Only seeds that every
    variant ran are kept, so that every comparison is paired."""
    labels = list(dict.fromkeys(label for r in records for label in r["variants"]))
    by_seed: dict[int, dict] = {}
    pretraining: dict[int, tuple] = {}
    for record in records:
        for seed_record in record["seeds"]:
            config = record["config"]
            how = (config["pretrain_epochs"], config["batch"], json.dumps(config["pretrain_options"], sort_keys=True))
            if pretraining.setdefault(seed_record["seed"], how) != how:
                raise ValueError(f"seed {seed_record['seed']} was pretrained differently in two runs "
                                 f"({pretraining[seed_record['seed']]} and {how}): their picks cannot be paired")
            merged = by_seed.setdefault(seed_record["seed"], {**seed_record, "picks": [{} for _ in seed_record["picks"]],
                                                              "search_seconds": [], "visits": {}, "variants": []})
            merged["variants"] += record["variants"]
            if not merged["scores"] and seed_record["scores"]:  # a run with --no-scores has none
                merged["scores"], merged["tau"] = seed_record["scores"], seed_record["tau"]
            for b, picks in enumerate(seed_record["picks"]):
                merged["picks"][b].update(picks)
            merged["visits"].update(seed_record.get("visits", {}))
            for b, seconds in enumerate(seed_record["search_seconds"]):
                if len(merged["search_seconds"]) <= b:
                    merged["search_seconds"].append({})
                merged["search_seconds"][b].update(zip(record["variants"], seconds))
    complete = [r for _, r in sorted(by_seed.items()) if set(r["variants"]) == set(labels)]
    for r in complete:
        r["search_seconds"] = [[t[label] for label in labels] for t in r["search_seconds"]]
    return {"bounds": records[0]["bounds"], "variants": labels, "seeds": complete}


def _run(args: argparse.Namespace, table: dict, variants: list[dict]) -> dict:
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
    labels = [_label(v) for v in variants]
    print(f"ground truth: {len(table)} architectures of {len(next(iter(table)))} containers x {len(OPS)} ops {OPS}, "
          f"MMAC {latencies[0]:.4f}..{latencies[-1]:.4f}; bounds {[round(b, 4) for b in bounds]} "
          f"(quantiles {QUANTILES} of all MMAC; feasible {[sum(l <= b for l in latencies) for b in bounds]})")
    print(f"pipeline: pretrain {args.pretrain_epochs} epochs, options {args.pretrain_options},"
          f" search {args.search_epochs} epochs, seeds {args.seeds}, variants {labels}; "
          f"tau over {'all' if len(scored) == len(architectures) else len(scored)} architectures; enot from "
          f"{Path(enot.__file__).parent}", flush=True)
    record = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "bounds": bounds, "variants": labels, "seeds": []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        space, pretrain_cpu = _pretrained(seed, data, args)
        pretrain_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = {} if args.no_scores else _supernet_scores(space, scored, data, bn_loader, args.score_bn_batches)
        score_wall = time.perf_counter() - t0
        tau = float(kendalltau([scores[a] for a in scored], [truth[a] for a in scored]).statistic) if scores else None
        print(f"seed {seed}: pretrain {pretrain_wall:.0f} s (CPU {pretrain_cpu:.0f} s when trained)" + (
              f"; BN-tuned supernet vs ground truth: Kendall tau {tau:.3f} ({score_wall:.0f} s)" if scores else ""),
              flush=True)
        seed_record = {"seed": seed, "tau": tau, "pretrain_cpu_seconds": pretrain_cpu,
                       "scores": {json.dumps(list(a)): v for a, v in scores.items()}, "picks": [], "search_seconds": []}
        record["seeds"].append(seed_record)
        for b, bound in enumerate([] if args.tau_only else bounds):
            picks: dict[str, list[int] | None] = {}
            seconds = []
            for variant, label in zip(variants, labels):
                t0 = time.perf_counter()
                pick, top_pick, visits = _search(copy.deepcopy(space), bound, data, bn_loader, args.search_epochs,
                                                 seed, variant)
                seconds.append(time.perf_counter() - t0)
                seed_record.setdefault("visits", {}).setdefault(label, []).append(visits)
                picks[f"pipeline: {label}"] = list(pick)
                picks[f"pipeline: {label}, top-K re-ranked"] = None if top_pick is None else list(top_pick)
                f = _figures(tuple(pick), bound, table)
                print(f"  bound {bound:.4f}, {label}: pick {list(pick)} {[OPS[k] for k in pick]} mmac "
                      f"{table[tuple(pick)]['mmac']:.4f} ({f['use']:.1%}), regret {f['regret']:.2f} pp "
                      f"({seconds[-1]:.0f} s; {visits[1]} distinct of {visits[0]} architectures drawn)" + (f"; top-K pick {list(top_pick)}, regret "
                      f"{_figures(tuple(top_pick), bound, table)['regret']:.2f} pp" if top_pick is not None else ""),
                      flush=True)
            seed_record["picks"].append({k: (None if v is None else list(v)) for k, v in picks.items()})
            seed_record["search_seconds"].append(seconds)
        if args.save:
            args.save.write_text(json.dumps(record) + "\n")  # after every seed: a stopped run keeps what it did
    return record


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
    parser.add_argument("--estimator", default=None, help="one variant's estimator: two_path or first_order")
    parser.add_argument("--bn-scheme", default=None, help="one variant's batch-norm tuning: fresh or cached")
    parser.add_argument("--validation-top-k", type=int, default=1, help="also report the pick of validation_top_k=K "
                        "re-ranked by val accuracy (validation_score) beside the default most probable pick")
    parser.add_argument("--variants", type=json.loads, default=None,
                        help="JSON list of search variants (dicts of search options, see above); overrides "
                        "--estimator/--bn-scheme/--validation-top-k")
    parser.add_argument("--cache", type=Path, default=None, help="folder of pretrained supernets (reused when present)")
    parser.add_argument("--save", type=Path, default=None, help="write picks, scores and taus as JSON here")
    parser.add_argument("--no-scores", action="store_true", help="skip scoring every network on the supernet (no "
                        "tau, no 'supernet, all feasible scored'; --rescore takes them from another run of the seed)")
    parser.add_argument("--rescore", type=Path, nargs="+", default=None,
                        help="print the summary of --save files (their seeds pooled) against --table")
    args = parser.parse_args()
    table = _load_table(args.table)
    if args.rescore:
        records = [json.loads(path.read_text()) for path in args.rescore]
        for path, other in zip(args.rescore, records):
            print(f"saved run {path}: seeds {[r['seed'] for r in other['seeds']]}, variants {other['variants']}, "
                  f"config {other['config']}")
            if other["bounds"] != records[0]["bounds"]:
                parser.error(f"{path} has other bounds than {args.rescore[0]}: cannot be pooled")
        print(f"scored against {args.table}")
        _report(_pooled(records), table)
        return
    if args.quick:
        args.seeds, args.pretrain_epochs, args.search_epochs, args.tau_architectures = 1, 3, 2, 100
    if args.variants is None:
        variant = {"estimator": args.estimator, "bn_scheme": args.bn_scheme}
        variant = {k: v for k, v in variant.items() if v is not None}
        if args.validation_top_k > 1:
            variant["validation_top_k"] = args.validation_top_k
        args.variants = [variant]
    if not isinstance(args.variants, list) or not args.variants or not all(isinstance(v, dict) for v in args.variants):
        parser.error(f"--variants must be a non-empty JSON list of objects, got {args.variants!r}")
    for variant in args.variants:  # checked before pretraining, not minutes into the run
        if variant.get("score", "accuracy") not in ("accuracy", "loss"):
            parser.error(f"--variants: score must be 'accuracy' or 'loss', got {variant['score']!r} in {variant}")
        if not isinstance(variant.get("validation_top_k", 1), int) or variant.get("validation_top_k", 1) < 1:
            parser.error(f"--variants: validation_top_k must be a positive int, got {variant['validation_top_k']!r}")
    labels = [_label(v) for v in args.variants]
    if len(set(labels)) != len(labels):
        parser.error(f"--variants: two variants share a label ({labels}); give each a distinct 'label'")
    torch.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.tau_only and args.no_scores:
        parser.error("--tau-only needs the scores: drop --no-scores")
    record = _run(args, table, args.variants)
    if args.tau_only:
        taus = [r["tau"] for r in record["seeds"]]
        print(f"Kendall tau (BN-tuned supernet val accuracy vs ground truth): mean {statistics.fmean(taus):.3f}, "
              f"per seed {[round(t, 3) for t in taus]}")
    else:
        _report(record, table)
    print(f"wall time: total {time.perf_counter() - start:.0f} s (CPU {time.process_time() - cpu_start:.0f} s)")


if __name__ == "__main__":
    main()
