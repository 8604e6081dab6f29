"""Atomic file writes: write to a temporary file next to the target, fsync, then rename.

A crash, an interrupt or a full disk leaves either the old file or the new one,
never a half-written one.

Output folders (who may replace what) are ``src/common/outputs.py``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from src.common.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as error:
            raise disk_error(error, target.parent) from None
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | Path, value: Any) -> None:
    atomic_write_text(target, json.dumps(value, indent=2, sort_keys=False) + "\n")


def report_table_and_json(table: str, result: dict, json_out: str | Path | None) -> dict:
    """A benchmark's ending: print its table, write its numbers to ``json_out`` (when given) and
    say where; returns ``result``."""
    print(table)
    if json_out:
        atomic_write_json(json_out, result)
        print(f"wrote {json_out}")
    return result


FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserError):
    """The disk (or quota) holding ``folder`` is full: one line naming the folder, exit code 2."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        super().__init__(
            f"the disk holding {self.folder} is full; nothing half-written was kept",
            "Free some space there (or choose another folder) and run the same command again.",
        )


def disk_error(error: OSError, folder: str | Path) -> Exception:
    """A ``DiskFullError`` naming ``folder`` when ``error`` is a full disk (or quota); else ``error``."""
    if getattr(error, "errno", None) in FULL_DISK_ERRNOS:
        return DiskFullError(folder)
    return error


def is_full_disk(error: BaseException, folder: str | Path) -> bool:
    """Whether ``error`` (from any writer: Python, torch, safetensors' Rust) came from a full disk:
    its errno, its message, or no space left on ``folder``'s file system."""
    if isinstance(error, DiskFullError) or getattr(error, "errno", None) in FULL_DISK_ERRNOS:
        return True
    if not isinstance(error, (OSError, RuntimeError)) and type(error).__name__ != "SafetensorError":
        return False
    if "No space left on device" in str(error) or "os error 28" in str(error):
        return True
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail == 0 or stats.f_bfree == 0


def normal_permissions(folder: Path) -> None:
    """Give a staged folder and everything in it the usual permissions (mkdtemp makes 0700; some
    writers make 0600 files)."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def check_writable_file(path: str | Path, *, what: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """Fail early (before any rendering) if ``path`` cannot be written."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{what} path {path} must end in one of {', '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{what} path {path} is a folder", "Give a file name, for example out.mp4.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        why = error.strerror or str(error)
        if error.errno in (errno.EEXIST, errno.ENOTDIR):
            why = "a file is where a folder is needed"
        raise UserError(
            f"cannot write {what} to {path}: {why}", "Choose a path in a writable folder."
        ) from None
    return path


def check_writable_dir(path: str | Path, *, what: str) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} path {path} exists and is not a folder")
    check_writable_file(path.parent / f".{path.name}.probe", what=what)
    return path
