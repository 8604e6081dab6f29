"""Output folders: a command replaces or removes only what it wrote itself, at every depth.

Every folder written through ``atomic_directory`` (or closed by a streaming writer through
``swap_into_place``) carries a marker file, ``.velodream-output.json``: the kind of output, the
command, and every path it wrote, files and folders at every depth. ``claim_output_folder``
refuses, with one line, an existing folder without the marker, of another kind, holding any path
the marker does not list (a user's file inside a member folder included), a folder that is part
of another command's output, and a folder that contains one of the command's inputs.

A folder is written in a staging folder beside its target (``.NAME.XXXX.tmp``) that holds a
staging marker naming the process; the old folder is moved aside to a fresh ``.NAME.XXXX.old``
and removed after the swap. Folders of either kind that an interrupted run left behind (their
process is gone) are removed by the next write of the same target; nothing else beside the
target is ever touched.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from src.common.errors import UserError
from src.common.io import DiskFullError, atomic_write_json, disk_error, is_full_disk, normal_permissions

OUTPUT_MARKER = ".velodream-output.json"
STAGING_MARKER = ".velodream-staging.json"  # in a folder being written: which process writes it
# hidden names at any depth (markers, staging and moved-aside folders) are never part of a package
# that is published or downloaded (hub patterns match with fnmatch: '*' crosses '/')
NOT_PUBLISHED = [OUTPUT_MARKER, STAGING_MARKER, ".*", "*/.*"]
MARKER_VERSION = 2  # version 2 lists paths at every depth; markers without a version list top-level names


def check_plain_name(name: str, what: str) -> str:
    """``name`` as a plain file or folder name (no separator, not '.' or '..'), or a one-line error:
    a name written inside an output folder can never land outside it."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or Path(name).is_absolute()
        or "\0" in name
    ):
        raise UserError(
            f"{what} {name!r} is not a plain name", "Use letters, digits, '-', '_' or '.', without '/'."
        )
    return name


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _read_marker(folder: Path) -> tuple[str | None, set[str], bool]:
    """The kind, the paths and whether the marker of ``folder`` lists paths at every depth
    (``(None, set(), False)`` without a readable marker)."""
    try:
        marker = json.loads((folder / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return None, set(), False
    if not isinstance(marker, dict) or not isinstance(marker.get("files", []), list):
        return None, set(), False
    every_depth = marker.get("version") == MARKER_VERSION
    return str(marker.get("kind")), {str(name) for name in marker.get("files", [])}, every_depth


def written_paths(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (relative, '/'-separated), its own markers left out."""
    paths = []
    for root, dirs, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        paths += [(relative / name).as_posix() for name in dirs + files]
    return sorted(set(paths) - {OUTPUT_MARKER, STAGING_MARKER})


def foreign_paths(
    folder: Path, *, also_ours: Iterable[str] = (), recognise: Callable[[Path], bool] | None = None
) -> list[str]:
    """The paths under ``folder`` that its marker does not give to the command that wrote it.

    A sub-folder with a marker of its own (an ncnn export inside a package) is judged by that
    marker. A marker from before paths were listed at every depth gives the contents of a listed
    folder to its writer only when ``recognise`` knows the whole folder as that writer's.
    ``also_ours`` names top-level folders another command of this one's makes inside it.
    """
    _, listed, every_depth = _read_marker(folder)
    legacy_ok = not every_depth and recognise is not None and recognise(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        relative = here.relative_to(folder)
        if here != folder and (here / OUTPUT_MARKER).is_file():
            found += [f"{relative.as_posix()}/{path}" for path in foreign_paths(here)]
            dirs.clear()
            continue
        for name in dirs + files:
            path = (relative / name).as_posix()
            top = path.split("/")[0]
            if path in (OUTPUT_MARKER, STAGING_MARKER) or path in listed or top in also_ours:
                continue
            if legacy_ok and top in listed:
                continue
            found.append(path)
        dirs[:] = [name for name in dirs if (relative / name).as_posix() not in found]
    return sorted(found)


def _refuse_part_of_other_output(target: Path, kind: str, flag: str) -> None:
    """A folder listed by its parent's marker belongs to that output (a bundle's member package),
    unless it carries a marker of this kind of its own (a clip an evaluation recorded)."""
    parent_kind, listed, _ = _read_marker(target.parent)
    own_kind = _read_marker(target)[0]
    if parent_kind is not None and parent_kind != kind and target.name in listed and own_kind != kind:
        raise UserError(
            f"{flag} {target} is part of the {parent_kind} {target.parent}, so it will not be replaced on its own",
            f"Choose a new folder for {flag}, or rewrite {target.parent} with the command that made it.",
        )


def _refuse_bad_place(target: Path, inputs: Iterable[str | Path], flag: str) -> None:
    """Refuse a ``target`` that equals or contains an input, is not a folder, or lies under a file
    or (when it does not exist yet) under a folder that is not writable."""
    resolved = target.resolve()
    for source in inputs:
        if _is_within(Path(source).resolve(), resolved):
            raise UserError(
                f"{flag} {target} contains this command's input {source}: writing it would delete the input",
                f"Choose a new folder for {flag}.",
            )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserError(f"{flag} {target} exists and is not a folder", f"Choose a new folder for {flag}.")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(
                    f"{flag} {target}: {parent} is a file, not a folder", f"Choose another {flag}."
                )
            if not os.access(parent, os.W_OK | os.X_OK) and not target.exists():
                raise UserError(
                    f"{flag} {target}: the folder {parent} is not writable", f"Choose another {flag}."
                )
            break


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
    marker names ``kind`` and lists every path in it at every depth, apart from ``also_ours``; a
    folder from before markers counts when ``recognise(folder)`` says it is one). Refused with
    one line (a UserError): anything else, a folder that is part of another output, and a
    ``target`` that equals or contains an input. ``replaces=False`` is for commands that only
    add or update their own files in the folder (``prepare_data``, ``evaluate``): other files in
    a folder of their kind are left alone, so they do not block it.
    """
    target = Path(target)
    _refuse_bad_place(target, inputs, flag)
    if not target.exists():
        return target
    _refuse_part_of_other_output(target, kind, flag)
    try:
        names = {child.name for child in target.iterdir()}
    except OSError as error:
        raise UserError(f"cannot read {flag} {target}: {error.strerror or error}") from None
    if not names:
        return target
    written_kind, _, _ = _read_marker(target)
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
    foreign = foreign_paths(target, also_ours=also_ours, recognise=recognise)
    if foreign and replaces:
        raise UserError(
            f"{flag} {target} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which this command "
            "did not write, so it will not be replaced",
            f"Move {'them' if len(foreign) > 1 else 'it'} out of {target}, or choose a new folder for {flag}.",
        )
    if not os.access(target, os.W_OK | os.X_OK) or not os.access(target.parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {target} is not writable", f"Choose another {flag}.")
    return target


def write_output_marker(folder: str | Path, *, kind: str) -> None:
    """Record in ``folder`` that it is an output of ``kind`` and every path the command wrote."""
    folder = Path(folder)
    atomic_write_json(
        folder / OUTPUT_MARKER,
        {
            "kind": kind,
            "version": MARKER_VERSION,
            "command": " ".join(sys.argv),
            "files": written_paths(folder),
        },
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_staging(target: str | Path) -> list[Path]:
    """Remove the staging and moved-aside folders an interrupted write of ``target`` left beside it
    (those with a staging marker for ``target`` whose process is gone); returns what went."""
    target = Path(target)
    removed = []
    for sibling in Path(target.parent).glob(f".{glob.escape(target.name)}.*"):
        if sibling.is_symlink() or not sibling.is_dir() or not sibling.name.endswith((".tmp", ".old")):
            continue
        try:
            staging = json.loads((sibling / STAGING_MARKER).read_text())
            ours = staging["target"] == target.name and not _process_alive(int(staging["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ours:
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


def _mark_staging(folder: Path, target: Path) -> None:
    (folder / STAGING_MARKER).write_text(json.dumps({"pid": os.getpid(), "target": target.name}) + "\n")


def make_staging_folder(target: str | Path) -> Path:
    """A fresh staging folder beside ``target`` (after removing stale ones of earlier runs)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _mark_staging(staging, target)
    return staging


def swap_into_place(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` folder onto ``target``; an existing ``target`` (already claimed
    by the caller) goes to a fresh ``.NAME.XXXX.old`` and is removed after the swap."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old)  # onto the empty folder mkdtemp made: nothing of anyone else's is in it
        _mark_staging(old, target)  # an interrupted swap leaves it for the next write to clean
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(
    target: str | Path,
    *,
    kind: str,
    inputs: Iterable[str | Path] = (),
    recognise: Callable[[Path], bool] | None = None,
    also_ours: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield a staging folder beside ``target``; on success it replaces ``target`` in one rename.

    ``target`` must pass ``claim_output_folder`` (checked before and again at the swap); the new
    folder gets the output marker of ``kind``. On any error (a full disk included) the staging
    folder is removed and the old ``target`` is left as it was.
    """
    target = Path(target)
    claim = dict(kind=kind, inputs=list(inputs), recognise=recognise, also_ours=list(also_ours))
    claim_output_folder(target, **claim)
    try:
        tmp = make_staging_folder(target)
    except OSError as error:
        raise disk_error(error, target) from None
    try:
        try:
            yield tmp
            write_output_marker(tmp, kind=kind)
        except Exception as error:
            if is_full_disk(error, target.parent):  # name the output's folder, not the staging one
                raise DiskFullError(target.parent) from None
            raise
        normal_permissions(tmp)
        claim_output_folder(target, **claim)
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
