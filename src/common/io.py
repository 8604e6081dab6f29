"""Atomic file writes: write to a temporary file next to the target, fsync, then rename.

A crash, an interrupt or a full disk leaves either the old file or the new one,
never a half-written one.

Output folders follow one rule (``claim_output_folder``): a command replaces a folder only if
it wrote that folder itself. Every folder written through ``atomic_directory`` carries a marker
file (``.velodream-output.json``: the kind of output, the command and the names it wrote); an
existing folder without the marker, of another kind, or holding a name the command did not
write, is refused with one line, and so is a folder that contains one of the command's inputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
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


OUTPUT_MARKER = ".velodream-output.json"


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _written_names(folder: Path) -> tuple[str | None, set[str]]:
    """The kind and the names recorded in ``folder``'s marker (``(None, set())`` without one)."""
    try:
        marker = json.loads((folder / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return None, set()
    if not isinstance(marker, dict):
        return None, set()
    return str(marker.get("kind")), {str(name) for name in marker.get("files", [])}


def claim_output_folder(
    target: str | Path,
    *,
    kind: str,
    inputs: Iterable[str | Path] = (),
    recognise: Callable[[Path], bool] | None = None,
    also_ours: Iterable[str] = (),
    flag: str = "--out",
    replaces: bool = True,
) -> Path:
    """Check, before any work, that ``target`` may be (re)written as an output of ``kind``.

    Allowed: a folder that does not exist, an empty one, or one this kind of command wrote (its
    marker names ``kind`` and every name in it, apart from ``also_ours``, is one it wrote; a
    folder from before markers counts when ``recognise(folder)`` says it is one). Refused with
    one line (a UserError): anything else, and a ``target`` that equals or contains an input.
    ``replaces=False`` is for commands that only add or update their own files in the folder
    (``prepare_data``, ``evaluate``): other files in a folder of their kind are left alone, so
    they do not block it.
    """
    target = Path(target)
    resolved = target.resolve()
    for source in inputs:
        if _is_within(Path(source).resolve(), resolved):
            raise UserError(
                f"{flag} {target} contains this command's input {source}: writing it would delete the input",
                f"Choose a new folder for {flag}.",
            )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserError(f"{flag} {target} exists and is not a folder", f"Choose a new folder for {flag}.")
    if not target.exists():
        return target
    try:
        names = {child.name for child in target.iterdir()}
    except OSError as error:
        raise UserError(f"cannot read {flag} {target}: {error.strerror or error}") from None
    if not names:
        return target
    written_kind, written = _written_names(target)
    if written_kind is None:
        if recognise is not None and recognise(target):
            return target
        raise UserError(
            f"{flag} {target} already exists and was not written by this command, so it will not be replaced",
            f"Choose a new folder for {flag}, or move {target} away yourself.",
        )
    if written_kind != kind:
        raise UserError(
            f"{flag} {target} holds a {written_kind} output, not a {kind}, so it will not be replaced",
            f"Choose a new folder for {flag}.",
        )
    foreign = sorted(names - written - set(also_ours) - {OUTPUT_MARKER})
    if foreign and replaces:
        raise UserError(
            f"{flag} {target} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which this command "
            "did not write, so it will not be replaced",
            f"Move {'them' if len(foreign) > 1 else 'it'} out of {target}, or choose a new folder for {flag}.",
        )
    return target


def write_output_marker(folder: str | Path, *, kind: str) -> None:
    """Record in ``folder`` that it is an output of ``kind`` and which names the command wrote."""
    folder = Path(folder)
    names = sorted(child.name for child in folder.iterdir() if child.name != OUTPUT_MARKER)
    atomic_write_json(
        folder / OUTPUT_MARKER,
        {"kind": kind, "command": " ".join(sys.argv), "files": names},
    )


@contextlib.contextmanager
def atomic_directory(
    target: str | Path,
    *,
    kind: str,
    inputs: Iterable[str | Path] = (),
    recognise: Callable[[Path], bool] | None = None,
    also_ours: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` in one rename.

    ``target`` must pass ``claim_output_folder`` (checked before and again at the swap); the new
    folder gets the output marker of ``kind``. An existing ``target`` is moved aside first and
    removed after the new one is in place. On any error (a full disk included) the temporary
    folder is removed and the old ``target`` is left as it was.
    """
    target = Path(target)
    inputs = list(inputs)
    also_ours = list(also_ours)
    claim = dict(kind=kind, inputs=inputs, recognise=recognise, also_ours=also_ours)
    claim_output_folder(target, **claim)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as error:
        raise disk_error(error, target) from None
    try:
        try:
            yield tmp
            write_output_marker(tmp, kind=kind)
        except Exception as error:
            if is_full_disk(error, target.parent):  # name the output's folder, not the temporary one
                raise DiskFullError(target.parent) from None
            raise
        _normal_permissions(tmp)
        claim_output_folder(target, **claim)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def _normal_permissions(folder: Path) -> None:
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
        raise UserError(
            f"cannot write {what} to {path}: {error.strerror or error}", "Choose a path in a writable folder."
        ) from None
    return path


def check_writable_dir(path: str | Path, *, what: str) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} path {path} exists and is not a folder")
    check_writable_file(path.parent / f".{path.name}.probe", what=what)
    return path
