"""Search-space autogeneration on torchvision models (random weights): time to generate, containers,
candidates, and the MACs of the network with every block at one width.

    python benchmarks/autogeneration.py [--threads 1] [--resolution 224]

Prints one table (figures in docs/autogeneration.md come from it).  torchvision is imported the way
the tests do (tests/_torchvision_compat.py), never by enot itself.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _torchvision_compat import define_torchvision_op_schemas  # noqa: E402

define_torchvision_op_schemas()
import torchvision  # noqa: E402

from enot.autogeneration import TransformationParameters, generate_pruned_search_variants_model  # noqa: E402
from enot.models import SearchSpaceModel  # noqa: E402

WIDTHS = (1.0, 0.75, 0.5, 0.25, 0.0)


def mmac(model: torch.nn.Module, resolution: int) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 2 / 1e6


def generate(model: torch.nn.Module, descriptors: tuple[TransformationParameters, ...]) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_pruned_search_variants_model(model, search_variant_descriptors=descriptors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {
        "mobilenet_v2": torchvision.models.mobilenet_v2,
        "resnet18": torchvision.models.resnet18,
        "resnet50": torchvision.models.resnet50,
        "efficientnet_v2_s": torchvision.models.efficientnet_v2_s,
    }
    descriptors = tuple(TransformationParameters(width_mult=w) for w in WIDTHS)
    print(f"torch {torch.__version__}, {args.threads} thread(s), input 1x3x{args.resolution}x{args.resolution}")
    header = ["model", "generate (s)", "containers", "candidates", "architectures"]
    header += [f"MMAC w={w}" for w in WIDTHS]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name, build in models.items():
        torch.manual_seed(0)
        model = build(weights=None).eval()
        start = time.perf_counter()
        space = SearchSpaceModel(generate(model, descriptors))
        seconds = time.perf_counter() - start
        counts = [c.n_choices for c in space.search_variants_containers]
        architectures = 1
        for n in counts:
            architectures *= n
        row = [name, f"{seconds:.1f}", str(len(counts)), str(sum(counts)), f"{architectures:.2e}"]
        for w in WIDTHS:
            if w == 1.0:
                row.append(f"{mmac(model, args.resolution):.0f}")
                continue
            # Every block that has a candidate at width w takes it; the others stay as they are.
            pair = SearchSpaceModel(generate(model, (TransformationParameters(width_mult=1.0), TransformationParameters(width_mult=w))))
            network = pair.get_network_by_indexes([1] * len(pair.search_variants_containers))
            row.append(f"{mmac(network, args.resolution):.0f}")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
