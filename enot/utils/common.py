"""Older import path of `make_portable`."""

from enot.utils._portable import make_portable

__all__ = ["make_portable"]
