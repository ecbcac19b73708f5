"""Imports of the optional ``data`` extra, with an error that names it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_extra"]


def import_extra(module: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or an ``ImportError`` that says to install the extra.

    Raises:
        ImportError: If ``module`` is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(
            f"{what} needs {package}, part of the optional extra 'data': pip install 'enot-open-nas[data]' "
            f"(or pip install {'pillow' if package == 'PIL' else package})"
        ) from error
