"""Run directories and checkpoints: atomic saves, keeping the last K, finding where to resume.

A checkpoint is written by accelerate into ``checkpoints/.step-NNNNNNN.tmp/``; a
``complete.json`` (step, data position, time) is written last and the folder is renamed to
``checkpoints/step-NNNNNNN/``. A run killed mid-save leaves only a ``.tmp`` folder, which is
ignored (and cleaned) on resume, so the previous checkpoint is used.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import time
from pathlib import Path

from src.common.errors import UserError
from src.common.io import atomic_write_json

_STEP_DIR = re.compile(r"step-(\d{7,})")
COMPLETE_MARKER = "complete.json"


def checkpoint_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.fullmatch(child.name)
        if match and (child / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def remove_incomplete(run_dir: Path) -> None:
    folder = run_dir / "checkpoints"
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name.startswith(".") and child.name.endswith(".tmp"):
                shutil.rmtree(child, ignore_errors=True)


def staging_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f".{checkpoint_dir_name(step)}.tmp"


def finalize_checkpoint(run_dir: Path, step: int, *, extra: dict, keep_last: int) -> Path:
    """Mark the staged checkpoint complete, rename it into place, prune old ones."""
    staged = staging_dir(run_dir, step)
    atomic_write_json(staged / COMPLETE_MARKER, {"step": step, "time": time.time(), **extra})
    final = run_dir / "checkpoints" / checkpoint_dir_name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    for _, old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


# what a damaged checkpoint file raises when read: torch (zip reader, unpickler), safetensors
# (Rust), a short read
DAMAGED_ERRORS = (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError)


def load_newest_readable_state(accelerator, run_dir: Path, say: bool) -> tuple[int, Path]:
    """Load the newest complete checkpoint of ``run_dir`` that reads; a damaged one (a truncated
    file) is passed over with a line saying so, for the one before it. Every one damaged: a
    one-line UserError."""
    checkpoints = list_checkpoints(run_dir)
    for step, folder in reversed(checkpoints):
        try:
            accelerator.load_state(str(folder))
            return step, folder
        except DAMAGED_ERRORS as error:
            if say:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
                print(f"checkpoint {folder} cannot be read ({first}): trying the one before it", flush=True)
    raise UserError(
        f"no checkpoint of {run_dir} can be read ({len(checkpoints)} damaged)",
        f"Start a new run (another --run_name), or move {run_dir / 'checkpoints'} away yourself.",
    )
