"""Older import path of `make_portable`."""

from enot.models._portable import make_portable

__all__ = ["make_portable"]
