"""Explicit random keys (``enot.functional.random``): ``key``, ``split``, ``fold_in``, ``generator``.

A key is an ``int64`` tensor of shape ``(2,)``; no function consumes or mutates it.  Every random
choice of ``enot`` (sampled architectures, alternatives) is drawn from a key the caller holds.
"""

from enot.functional._random import fold_in, generator, key, split

__all__ = ["fold_in", "generator", "key", "split"]
