"""`prepare_log`: ENOT 2.x's logging set-up for scripts that may run on several processes."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch.distributed as dist

__all__ = ["LOG_FILE_NAME", "prepare_log"]

LOG_FILE_NAME = "log.txt"
_MARK = "_enot_prepare_log"  # handlers this function added (replaced, not duplicated, on a second call)


def _rank(variable: str) -> int:
    """This process's rank: from the process group when one exists, else from the launcher's
    environment (``prepare_log`` is often called before the group is made)."""
    if variable == "RANK" and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    value = os.environ.get(variable, "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {variable} must be an integer, got {value!r}") from None


def prepare_log(
    log_path: str | os.PathLike[str], *, level: int = logging.INFO, file_name: str = LOG_FILE_NAME
) -> Path | None:
    """Sends ``logging`` records of every logger to the console and, on rank 0, to a file.

    ``log_path`` is a folder (created if needed; records go to ``log_path/<file_name>``) unless it
    names a file with a suffix (``run.log``).  The first process of each machine writes records of
    ``level`` and above to stderr, the others only warnings and errors, so a job of N processes does
    not print everything N times.  It may be called before the process group exists: the ranks then
    come from the launcher's ``RANK`` and ``LOCAL_RANK``.  Calling it again replaces the handlers it
    added before.

    Args:
        log_path: Folder (or file) of the log.
        level: Lowest level logged.
        file_name: Name of the file inside the folder.

    Returns:
        The log file on rank 0, ``None`` on other ranks.
    """
    main, local_main = _rank("RANK") == 0, _rank("LOCAL_RANK") == 0
    path = Path(log_path)
    file = path if path.suffix and not path.is_dir() else path / file_name
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level if local_main else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if main:
        file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(file)
        file_handler.setLevel(level)
        handlers.append(file_handler)
    for handler in handlers:
        setattr(handler, _MARK, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(min(level, root.level) if root.level != logging.NOTSET else level)
    return file if main else None
