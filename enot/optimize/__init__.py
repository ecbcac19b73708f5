"""ENOT's import path for the optimizer classes (re-exported from :mod:`enot.facade`)."""

from enot.facade import *  # noqa: F403
from enot.facade import __all__  # noqa: F401
