"""One ``prepare_data`` per dataset folder: two at once would both write shards and records into it
and leave it mixed. The same lock as ``train_net``'s run folder (src/common/folder_lock.py)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from accelerate.utils import broadcast_object_list

from src.common.errors import UserError
from src.common.folder_lock import lock_folder, release_folder_lock


def lock_dataset_folder(out: Path, state) -> IO[str] | None:
    """The main process locks ``out`` (an ``accelerate`` ``PartialState`` names it); every process
    of this command raises the one-line refusal when another command holds the lock."""
    lock, refusal = None, [None]
    if state.is_main_process:
        try:
            lock = lock_folder(
                out,
                in_use=f"the dataset folder {out} is being prepared by another prepare_data",
                hint="Wait for it to finish (re-running afterwards resumes it), or choose another --out.",
            )
        except UserError as error:
            refusal = [error.one_line()]
    if state.num_processes > 1:
        broadcast_object_list(refusal)
    if refusal[0] is not None:
        raise UserError(refusal[0])
    return lock


def release_dataset_folder(lock: IO[str] | None) -> None:
    if lock is not None:
        release_folder_lock(lock)
