"""Package archives whose members would escape the package folder are refused before anything
is unpacked: real archives served by a real HTTP server on 127.0.0.1, through download_checkpoint."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile

import pytest

from src.scripts.download_checkpoint import main
from tests.test_checkpoint_download import ArchiveServer, make_package_archive

PACKAGE_FILES = {"config.json": b"{}", "model.safetensors": b"\0" * 64, "conditions.json": b"{}"}


def _tar(evil: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """A tar.gz of a complete-looking package whose last member is ``evil``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in PACKAGE_FILES.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        evil.size = len(data) if evil.isfile() else 0
        archive.addfile(evil, io.BytesIO(data) if evil.isfile() else None)
    return buffer.getvalue()


def _tar_member(name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return _tar(info, b"evil" if kind == tarfile.REGTYPE else b"")


def _zip(evil_name: str, *, symlink_to: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in PACKAGE_FILES.items():
            archive.writestr(f"package/{name}", content)
        info = zipfile.ZipInfo(evil_name)
        if symlink_to is not None:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, symlink_to if symlink_to is not None else "evil")
    return buffer.getvalue()


ESCAPING = {
    "tar ../": (".tar.gz", lambda: _tar_member("package/../../evil.txt"), "outside the package folder"),
    "tar absolute": (".tar.gz", lambda: _tar_member("/tmp/velodream-evil.txt"), "outside the package folder"),
    "tar symlink": (
        ".tar.gz",
        lambda: _tar_member("package/link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        "symbolic link",
    ),
    "tar hardlink": (
        ".tar.gz",
        lambda: _tar_member("package/hard", kind=tarfile.LNKTYPE, link="../../evil.txt"),
        "hard link",
    ),
    "tar device": (".tar.gz", lambda: _tar_member("package/dev", kind=tarfile.CHRTYPE), "not a plain file"),
    "zip ../": (".zip", lambda: _zip("../evil.txt"), "outside the package folder"),
    "zip absolute": (".zip", lambda: _zip("/tmp/velodream-evil.txt"), "outside the package folder"),
    "zip symlink": (".zip", lambda: _zip("package/link", symlink_to="/etc/passwd"), "symbolic link"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ESCAPING))
def test_an_archive_with_an_escaping_member_is_refused_before_anything_is_written(case, tmp_path, capsys):
    suffix, make, why = ESCAPING[case]
    payload = make()
    cache = tmp_path / "deep" / "cache"
    with ArchiveServer(payload) as url:
        url = url.replace(".tar.gz", suffix)
        with pytest.raises(SystemExit) as exit_info:
            main([f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", "--cache_dir", str(cache)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: refusing to unpack") and why in err
    assert "Traceback" not in err
    written = [p for p in tmp_path.rglob("*") if not p.is_dir()]
    assert written == []  # no package, no staging folder, no archive, nothing beside the cache
    assert not (cache / "packages").exists() or not any((cache / "packages").iterdir())
    assert not __import__("os").path.lexists("/tmp/velodream-evil.txt")


def test_a_plain_package_archive_still_unpacks(tmp_path, capsys):
    payload = make_package_archive()
    with ArchiveServer(payload) as url:
        main([f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", "--cache_dir", str(tmp_path)])
    package = capsys.readouterr().out.strip()
    assert package.endswith(hashlib.sha256(payload).hexdigest())


def test_an_archive_url_without_its_checksum_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["http://127.0.0.1:9/model.tar.gz", "--cache_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no #sha256=" in err and list(tmp_path.iterdir()) == []
