"""Atomic file writes: a temporary file in the same folder, flushed and fsynced, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = True,
    verify: Callable[[Path], object] | None = None,
) -> None:
    """Calls ``write(file)`` on a temporary file next to ``path``, then renames it onto ``path``.

    ``verify(temporary_path)``, if given, runs once the file is complete and synced, before the
    rename; it raises to refuse the file.  A failure (or an exception, ``KeyboardInterrupt``
    included) at any point leaves an existing file at ``path`` untouched and no temporary file
    behind; a process killed outright may leave the ``.<name>.*.tmp`` file, never a damaged
    ``path``.  The rename is made durable by syncing the folder where POSIX allows.
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if verify is not None:
            verify(Path(temp))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if hasattr(os, "O_DIRECTORY"):
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
