"""Older import path of `make_portable`, and the shape helpers ENOT 2.x's tutorials import from here."""

from enot.models import make_portable
from enot.utils._shapes import input_hw, is_valid_for_skip_connection

__all__ = ["input_hw", "is_valid_for_skip_connection", "make_portable"]
