"""Plots at ENOT 2.x's import paths (matplotlib is an optional extra: ``pip install 'enot-open-nas[plot]'``)."""

__all__: list[str] = []
