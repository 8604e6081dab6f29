"""One training run per run folder, and a log that matches the checkpoint a run resumes from.

``lock_run_folder`` takes ``RUN/.lock`` (src/common/folder_lock.py): a second ``train_net`` on the
same run gets one line naming the holder; a lock left by a killed process is taken over (and the
next run says so).

``drop_log_records_after`` keeps in ``logs.jsonl`` only the records up to the step a run resumes
from: a run killed after logging but before its next checkpoint would otherwise log those steps
twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from src.common.errors import UserError
from src.common.folder_lock import LOCK_FILE, lock_folder
from src.common.folder_lock import release_folder_lock as release_run_folder
from src.common.io import atomic_write_text

__all__ = ["LOCK_FILE", "claim_run_folder", "drop_log_records_after", "lock_run_folder", "release_run_folder"]


def lock_run_folder(run_dir: str | Path) -> IO[str]:
    """Lock ``run_dir`` for this process (kept until the returned file is closed or the process
    ends); a UserError if another live process holds it."""
    return lock_folder(
        run_dir,
        in_use=f"the run {run_dir} is in use by another train_net",
        hint="Wait for it to finish or stop it; two runs in one folder would mix their checkpoints and logs.",
    )


def drop_log_records_after(run_dir: str | Path, step: int) -> int:
    """Remove from ``RUN/logs.jsonl`` (atomically) every record past ``step``; returns how many."""
    log = Path(run_dir) / "logs.jsonl"
    if not log.is_file():
        return 0
    kept, dropped = [], 0
    for line in log.read_text().splitlines():
        try:
            record_step = json.loads(line).get("step", 0)
        except (ValueError, AttributeError):
            record_step = None  # a line cut off by the crash
        if record_step is None or record_step > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        atomic_write_text(log, "".join(f"{line}\n" for line in kept))
    return dropped


def claim_run_folder(run_dir: str | Path) -> None:
    """Refuse (one line) a run folder that exists, holds files, and is not a training run: training
    writes checkpoints, logs and a package into it and removes its own unfinished checkpoints."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"the run folder {run_dir} exists and is not a folder", "Choose another --run_name.")
    if not run_dir.is_dir() or (run_dir / "run_config.yaml").is_file():
        return
    names = sorted(child.name for child in run_dir.iterdir() if child.name != LOCK_FILE)
    if names:
        raise UserError(
            f"the run folder {run_dir} already holds {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
            "and is not a training run",
            "Choose another --run_name (or --runs_dir), or move those files away.",
        )
