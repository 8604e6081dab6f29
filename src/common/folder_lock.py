"""One writing process per output folder: ``FOLDER/.lock``, taken by ``train_net`` (its run folder)
and ``prepare_data`` (its dataset folder).

The lock is an exclusive ``flock`` held for the life of the process, with the holder's pid and host
written in the file. A second command on the same folder gets one line naming the holder. Any
exit that runs Python's exit handlers (a finished run, a refusal, a traceback) empties the file; a
process that was killed leaves its pid there, and the kernel has released its ``flock``, so the
next command takes the file over and says so. Only such a lock is called stale.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO

from src.common.errors import UserError

LOCK_FILE = ".lock"
_HELD: dict[Path, IO[str]] = {}  # this process's locks by folder, emptied at exit


def lock_holder(lock: IO[str]) -> str:
    """``pid N on HOST`` as written in an open lock file, or ``another process``."""
    lock.seek(0)
    try:
        holder = json.loads(lock.read() or "{}")
        return f"pid {holder['pid']} on {holder['host']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _written_by_this_process(text: str) -> bool:
    try:
        holder = json.loads(text)
        return holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    except (ValueError, KeyError, TypeError):
        return False


def lock_folder(folder: str | Path, *, in_use: str, hint: str) -> IO[str]:
    """Lock ``folder`` for this process (kept until :func:`release_folder_lock`, or the process
    ends). If another live process holds it: ``UserError(f"{in_use} ({holder})", hint)``."""
    path = Path(folder) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = _HELD.get(path.resolve())
    if earlier is not None:  # an earlier command in this process that stopped without releasing it
        release_folder_lock(earlier)
    lock = open(path, "a+")  # noqa: SIM115 - held open for the life of the command
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock_holder(lock)
        lock.close()
        raise UserError(f"{in_use} ({holder})", hint) from None
    lock.seek(0)
    previous = lock.read().strip()
    # this process's own earlier lock (a command run twice in one process) is not stale
    if previous and not _written_by_this_process(previous):
        print(f"taking over the stale lock of {folder} ({lock_holder(lock)} is gone)", flush=True)
    lock.seek(0)
    lock.truncate()
    lock.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    lock.flush()
    _HELD[path.resolve()] = lock
    return lock


def release_folder_lock(lock: IO[str]) -> None:
    """Empty the lock file (a clean exit leaves no stale holder) and release it."""
    for folder, held in list(_HELD.items()):
        if held is lock:
            del _HELD[folder]
    if lock.closed:
        return
    lock.seek(0)
    lock.truncate()
    lock.close()


@atexit.register
def _release_held_locks() -> None:
    """A refused or failed command leaves no stale holder (a killed one does: it runs no handler)."""
    for lock in list(_HELD.values()):
        release_folder_lock(lock)
