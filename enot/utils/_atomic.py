"""Atomic file writes: a temporary file in the same folder, flushed and fsynced, then renamed."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
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
    ``path``.  The rename is made durable by syncing the folder where POSIX allows.  The file gets the
    mode ``open()`` would give it: an existing file's mode, else ``0o666`` less the process's umask
    (``mkstemp``'s private ``0o600`` is not kept).
    """
    path = Path(path)
    mode = _mode_for(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(handle, mode)
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


_UMASK_LOCK = threading.Lock()


def _mode_for(path: Path) -> int | None:
    """The permission bits ``open(path, "w")`` would leave: the existing file's, else ``0o666 & ~umask``
    (``None`` where permissions do not apply: no ``fchmod``)."""
    if not hasattr(os, "fchmod"):
        return None
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    with _UMASK_LOCK:  # reading the umask means setting it; put it back at once
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask
