"""The ``enot`` command (also ``python -m enot``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The ``enot`` argument parser with its sub-commands."""
    from enot import __version__

    parser = argparse.ArgumentParser(
        prog="enot", description="enot: one-shot neural architecture search for PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"enot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="pretrain, search under a latency bound and tune on scikit-learn's digits"
    )
    from enot._demo import add_arguments, run

    add_arguments(demo)
    demo.set_defaults(handler=lambda args: run(args, demo))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``enot`` command line; returns the exit code (2 for bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            parser.exit(2, "enot: error: give a command, e.g. 'enot demo' (see 'enot demo --help')\n")
        return int(args.handler(args))
    except SystemExit as exit_:  # argparse's errors and --help
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
