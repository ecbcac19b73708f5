"""Cost of the read-back check in `enot.utils.save_checkpoint` (issue 12, class 3).

`save_checkpoint` writes to a temporary file, reads it back with `torch.load(weights_only=True)` and
compares it with what it meant to write before renaming it over the old file.  This prints the median
time of `save_checkpoint` over the median time of the same atomic write without the check (plain
`torch.save` of the model's and optimizer's state dicts), interleaved in the same run.

    python benchmarks/checkpoint_save.py [--repeats 7] [--layers 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from torch import nn

from enot.utils import save_checkpoint
from enot.utils._atomic import atomic_write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layers", type=int, default=12, help="Linear(1024, 1024) layers (4.2 MB each)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(args.layers)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1024)).sum().backward()
    optimizer.step()  # momentum buffers: the optimizer state is as large as the model
    plain, checked = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            start = time.perf_counter()
            atomic_write(
                os.path.join(folder, "plain.pt"),
                lambda file: torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, file),
            )
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            save_checkpoint(os.path.join(folder, "checked.pt"), model, optimizer)
            checked.append(time.perf_counter() - start)
        size = os.path.getsize(os.path.join(folder, "checked.pt")) / 1e6
    p, c = statistics.median(plain), statistics.median(checked)
    print(f"checkpoint {size:.1f} MB, {args.repeats} repeats, {args.threads} thread(s)")
    print(f"atomic torch.save median {p * 1e3:.0f} ms; save_checkpoint (read back, compared) median {c * 1e3:.0f} ms")
    print(f"ratio {c / p:.2f}")


if __name__ == "__main__":
    main()
