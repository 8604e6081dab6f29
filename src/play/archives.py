"""Checking a downloaded package archive before anything of it is unpacked.

A renderer package is a folder of plain files (JSON, safetensors, a README, ncnn exports), so
its archive may hold only regular files and folders with relative names that stay inside the
target folder. Every member is checked first; one bad member rejects the whole archive, before
anything is written: absolute names, ``..`` components, drive letters, symbolic and hard links,
devices and FIFOs.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from src.common.errors import UserError


def _escapes(name: str) -> bool:
    """Whether an archive member name could land outside the folder it is unpacked into."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):  # /abs, C:\abs
        return True
    return ".." in PurePosixPath(posix).parts


def _reject(archive: Path, name: str, why: str, source: str | None) -> UserError:
    return UserError(
        f"refusing to unpack {source or archive.name}: member '{name}' {why}",
        "A renderer package archive holds only plain files inside its folder; nothing was unpacked.",
    )


def check_archive_members(archive: str | Path, *, source: str | None = None) -> None:
    """Raise a UserError naming the first member of ``archive`` (tar or zip) that is not a plain
    file or folder with a relative name inside the target folder; return None if all are."""
    archive = Path(archive)
    try:
        if archive.suffix == ".zip":  # as checkpoints._extract decides
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    mode = info.external_attr >> 16  # unix mode bits, when the creator stored them
                    if _escapes(info.filename):
                        raise _reject(
                            archive, info.filename, "would be written outside the package folder", source
                        )
                    if stat.S_ISLNK(mode):
                        raise _reject(archive, info.filename, "is a symbolic link", source)
            return
        with tarfile.open(archive) as tarred:
            for member in tarred.getmembers():
                if _escapes(member.name):
                    raise _reject(archive, member.name, "would be written outside the package folder", source)
                if member.issym():
                    raise _reject(archive, member.name, f"is a symbolic link (to {member.linkname})", source)
                if member.islnk():
                    raise _reject(archive, member.name, f"is a hard link (to {member.linkname})", source)
                if not (member.isfile() or member.isdir()):
                    raise _reject(archive, member.name, "is not a plain file or folder", source)
    except (tarfile.ReadError, zipfile.BadZipFile) as error:
        # tarfile's message lists every compression it tried, one line each: say it plainly instead
        raise UserError(
            f"{source or archive.name} is not a tar or zip archive ({str(error).splitlines()[0].rstrip(':')})",
            "A checkpoint URL must point to a .tar.gz, .tar or .zip of a renderer package folder.",
        ) from None
    except (tarfile.TarError, EOFError) as error:
        raise UserError(f"the downloaded archive could not be read: {str(error).splitlines()[0]}") from None
