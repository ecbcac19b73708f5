"""Experimental features at ENOT 2.x's import paths: ``enot.experimental.resolution_search``."""

__all__: list[str] = []
