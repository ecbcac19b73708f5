"""The end-to-end demo behind ``enot demo``: pretrain, search under a latency bound, tune (private)."""

from enot._demo._cli import add_arguments, run

__all__ = ["add_arguments", "run"]
