"""``enot demo``: arguments, checks (exit code 2 with a message for bad ones), and the run."""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from enot._demo._pipeline import Settings

DESCRIPTION = """\
Neural architecture search end to end on scikit-learn's digits (8x8 images, 10 classes; shipped
with scikit-learn, nothing is downloaded):

  1. pretrain a MobileNet-like search space of 5 blocks x 5 candidate operations (3125
     architectures), one uniformly sampled path per step (EnotPretrainOptimizer);
  2. search for the most accurate architecture whose latency (millions of multiply-accumulates per
     sample) is within a bound (EnotFixedLatencySearchOptimizer);
  3. tune the found network (EnotTrainOptimizer) and, as a baseline, a random architecture within
     the same bound, tuned the same way.

It prints the chosen candidate of every block, latencies and test accuracies, and writes to
--output-dir: model.pt (the tuned network; torch.load(..., weights_only=False) works without enot),
model.onnx (with the onnx extra), latency_container.json, report.json and two PNG plots.
Default settings take a few minutes on a 2-core CPU.
"""


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the demo's options to ``parser``."""
    defaults = Settings()
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--output-dir", type=Path, default=Path("enot-demo"), metavar="DIR",
                        help="folder for the model, ONNX file, latency container, report and plots "
                             "(created if missing; default: %(default)s)")
    parser.add_argument("--seed", type=_int_at_least(0), default=defaults.seed,
                        help="seed of the data split, initial weights and every sampler; the same seed "
                             "gives the same run (default: %(default)s)")
    parser.add_argument("--max-latency", type=_positive_float, default=None, metavar="MMAC",
                        help="latency bound in millions of multiply-accumulates per sample; must be at "
                             "least the space's minimum latency (default: the minimum plus "
                             "--latency-fraction of the space's latency range)")
    parser.add_argument("--latency-fraction", type=_fraction, default=defaults.latency_fraction, metavar="F",
                        help="default bound as a fraction in (0, 1] of the range from the fastest to the "
                             "slowest architecture, used without --max-latency (default: %(default)s)")
    parser.add_argument("--pretrain-epochs", type=_int_at_least(1), default=defaults.pretrain_epochs, metavar="N",
                        help="epochs of supernet pretraining on the train split (default: %(default)s)")
    parser.add_argument("--search-epochs", type=_int_at_least(1), default=defaults.search_epochs, metavar="N",
                        help="epochs of architecture search on the search split (default: %(default)s)")
    parser.add_argument("--tune-epochs", type=_int_at_least(1), default=defaults.tune_epochs, metavar="N",
                        help="epochs of tuning for the found network and for the baseline (default: %(default)s)")
    parser.add_argument("--batch-size", type=_int_at_least(2), default=defaults.batch_size, metavar="N",
                        help="batch size of every phase (default: %(default)s)")
    parser.add_argument("--samples", type=_int_at_least(1), default=defaults.samples, metavar="N",
                        help="random architectures evaluated for the latency/accuracy plot (default: %(default)s)")
    parser.add_argument("--bn-tune-batches", "--bn-batches", type=_int_at_least(1), default=defaults.bn_tune_batches,
                        metavar="N", dest="bn_tune_batches",
                        help="batches that recalibrate batch norm before each search step; four times as "
                             "many before each evaluation of a path (default: %(default)s)")
    parser.add_argument("--threads", type=_int_at_least(1), default=1, metavar="N",
                        help="CPU threads for PyTorch; networks this small run fastest on one "
                             "(default: %(default)s)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export (it is skipped anyway "
                        "when the onnx extra is not installed: pip install 'enot-open-nas[onnx]')")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


class _Silent:
    """Stands in for a tqdm bar when progress bars are off or tqdm is missing."""

    def __init__(self, iterable: Any = None, **_: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Any:
        return iter(self._iterable)

    def update(self, *_: Any) -> None: ...
    def set_postfix(self, *_: Any, **__: Any) -> None: ...
    def close(self) -> None: ...


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _Silent
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent
    return functools.partial(tqdm, file=sys.stderr, dynamic_ncols=True, leave=True)


def _check_output_dir(parser: argparse.ArgumentParser, output_dir: Path) -> Path:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        parser.error(f"--output-dir {str(output_dir)!r} is not a writable folder ({error.strerror or error})")
    return output_dir


def _check_dependencies(parser: argparse.ArgumentParser) -> None:
    missing = []
    for module in ("sklearn", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        parser.error(f"the demo needs {', '.join(missing)}; install it with: pip install 'enot-open-nas[demo]'")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Runs the demo with parsed ``args``; bad arguments end through ``parser.error`` (exit code 2)."""
    import torch

    from enot._demo import _report
    from enot._demo._data import load_digits_splits
    from enot._demo._pipeline import initialize, run_pipeline
    from enot._demo._space import build_search_space

    _check_dependencies(parser)
    output_dir = _check_output_dir(parser, args.output_dir)
    settings = Settings(
        seed=args.seed, max_latency=args.max_latency, latency_fraction=args.latency_fraction,
        batch_size=args.batch_size, pretrain_epochs=args.pretrain_epochs, search_epochs=args.search_epochs,
        tune_epochs=args.tune_epochs, samples=args.samples, bn_tune_batches=args.bn_tune_batches,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        torch.manual_seed(settings.seed)
        splits = load_digits_splits(settings.seed)
        search_space = build_search_space()
        bounds = initialize(search_space, splits, settings)
        low, high, bound = bounds
        if bound < low:
            parser.error(
                f"--max-latency {bound:g} is below the minimum latency of the search space ({low:.4f} MMAC per "
                f"sample); choose a value from {low:.4f} to {high:.4f}"
            )
        print(f"enot demo: digits, {len(splits.train[1])} train / {len(splits.search[1])} search / "
              f"{len(splits.test[1])} test images; latency bound {bound:.4f} MMAC per sample "
              f"(space: {low:.4f} .. {high:.4f})", flush=True)
        outcome = run_pipeline(search_space, splits, settings, bounds, _progress(not args.no_progress))

        files = {}
        files["model"] = str(_report.save_model(outcome.network, output_dir))
        if not args.no_onnx:
            onnx_path = _report.save_onnx(outcome.network, output_dir)
            if onnx_path is not None:
                files["onnx"] = str(onnx_path)
        latency_path = output_dir / _report.FILES["latency"]
        search_space.get_latency_container().save_to_file(latency_path)
        files["latency"] = str(latency_path)
        for name, plot in (("probabilities_plot", _report.plot_probabilities),
                           ("latency_accuracy_plot", _report.plot_latency_accuracy)):
            path = output_dir / _report.FILES[name]
            plot(outcome, path)
            files[name] = str(path)
        files["report"] = str(output_dir / _report.FILES["report"])
        seconds = time.perf_counter() - start
        _report.save_json(_report.report(outcome, settings, files, seconds), Path(files["report"]))
        print()
        print(_report.table(outcome))
        print()
        print(f"done in {seconds:.0f} s; files:")
        for path in files.values():
            print(f"  {path}")
        return 0
    finally:
        torch.set_num_threads(threads)
