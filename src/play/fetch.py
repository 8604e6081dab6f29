"""Package sources: where a renderer package comes from (`--checkpoint` of play, evaluate and export).

A source is one of
- a local package directory (``game/models/default``, ``runs/cpu_tiny/package``);
- ``hf://owner/repo[@revision]``: a Hugging Face Hub model repository (huggingface_hub does
  the caching, resuming and progress);
- ``https://host/path/archive.tar.gz#sha256=HEX`` (also ``.tgz``, ``.tar``, ``.zip``): an
  archive of a package with its expected SHA-256. ``http://`` is accepted only for loopback
  hosts (tests, local mirrors).

Downloads go to the cache directory (``$VELODREAM_CACHE`` or ``~/.cache/velodream``): the
archive is written to ``downloads/<sha256>.partial``, resumed with an HTTP Range request after a
dropped connection or an interrupted run, verified, and unpacked to ``packages/<sha256>/`` in
one rename. A hash mismatch deletes the partial file, so nothing unverified stays in the cache.
Packages hold safetensors and JSON only; nothing downloaded is ever unpickled.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from src.common.errors import UserError
from src.common.io import FULL_DISK_ERRNOS, DiskFullError
from src.common.outputs import NOT_PUBLISHED, atomic_directory
from src.common.progress import tqdm  # plain lines when the output is not a terminal
from src.play.archives import check_archive_members
from src.runtime.package import BUNDLE_FILE, REQUIRED_PACKAGE_FILES, check_package, default_cache_dir

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_CHUNK_BYTES = 1 << 16


def resolve_checkpoint(
    source: str, *, cache_dir: str | Path | None = None, offline: bool | None = None
) -> Path:
    """Turn a checkpoint source into a local, complete package directory (downloading if needed)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if offline is None:  # the hub client also honours its own HF_HUB_OFFLINE
        offline = os.environ.get("VELODREAM_OFFLINE", "0") not in ("0", "", "false")
    if source.startswith("hf://"):
        return _resolve_hub(source, cache, offline)
    if re.match(r"^https?://", source):
        return _resolve_url(source, cache, offline)
    return check_package(source)


def _resolve_hub(source: str, cache: Path, offline: bool) -> Path:
    match = re.fullmatch(r"hf://([\w.-]+/[\w.-]+)(?:@([\w./-]+))?", source)
    if not match:
        raise UserError(
            f"invalid hub source '{source}'", "Write it as hf://owner/repo or hf://owner/repo@revision."
        )
    repo_id, revision = match.group(1), match.group(2)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UserError(
            f"invalid hub source '{source}': {str(error).splitlines()[0]}",
            "Write it as hf://owner/repo or hf://owner/repo@revision.",
        ) from None

    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache / "hub",
            local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.md", "ncnn/*", "*.png"],
            ignore_patterns=NOT_PUBLISHED,
        )
    except LocalEntryNotFoundError:
        raise UserError(
            f"{source} is not in the cache and this machine is offline (or the hub cannot be reached)",
            "Connect to the internet once, or download it elsewhere and pass the package directory.",
        ) from None
    except RepositoryNotFoundError:
        raise UserError(f"hub repository {repo_id} does not exist or is private", "Check the name.") from None
    except HfHubHTTPError as error:
        raise UserError(f"downloading {source} failed: {error}".splitlines()[0]) from None
    return check_package(path, source=source)


def parse_archive_url(source: str) -> tuple[str, str]:
    """Split ``https://.../x.tar.gz#sha256=HEX`` into the URL and the lowercase hex digest."""
    url, _, fragment = source.partition("#")
    match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
    if not match:
        raise UserError(
            f"the archive URL {url} has no #sha256=... checksum",
            "Append the archive's SHA-256 as #sha256=<64 hex digits> so the download can be verified.",
        )
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "http" and parsed.hostname not in _LOOPBACK_HOSTS:
        raise UserError(f"refusing plain http for {url}", "Use an https:// URL.")
    if not parsed.path.endswith(ARCHIVE_SUFFIXES):
        raise UserError(f"unsupported archive type: {url}", f"Use one of {', '.join(ARCHIVE_SUFFIXES)}.")
    return url, match.group(1).lower()


def _resolve_url(source: str, cache: Path, offline: bool) -> Path:
    url, digest = parse_archive_url(source)
    package_dir = cache / "packages" / digest
    if package_dir.is_dir():
        return check_package(package_dir, source=source)
    if offline:
        raise UserError(
            f"{url} is not in the cache and this machine is offline", "Connect once, or pass a local package."
        )
    archive = download_verified(url, digest, cache / "downloads")
    try:
        check_archive_members(archive, source=url)  # before anything is unpacked
        with atomic_directory(package_dir, kind="downloaded package") as staging:
            _extract(archive, staging)
            root = _package_root(staging)
            if root != staging:  # archives often hold one top-level folder
                for item in root.iterdir():
                    shutil.move(str(item), staging / item.name)
            check_package(staging, source=source)
    finally:
        archive.unlink(missing_ok=True)
    return package_dir


def download_verified(
    url: str, sha256: str, directory: Path, *, attempts: int = 5, timeout_s: float = 30.0
) -> Path:
    """Download ``url`` into ``directory`` resuming any partial file, verify its SHA-256, return it.

    A dropped connection is retried (with a Range request) up to ``attempts`` times. On a hash
    mismatch the file is deleted and a UserError raised.
    """
    directory.mkdir(parents=True, exist_ok=True)
    suffix = next(s for s in ARCHIVE_SUFFIXES if urllib.parse.urlparse(url).path.endswith(s))
    partial = directory / f"{sha256}.partial"
    final = directory / f"{sha256}{suffix}"
    if final.exists():
        return final
    last_error: Exception | None = None
    for attempt in range(attempts):
        try:
            _download_range(url, partial, timeout_s)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            if getattr(error, "errno", None) in FULL_DISK_ERRNOS:
                raise DiskFullError(directory) from None  # the partial file stays: a rerun resumes it
            if isinstance(error, urllib.error.HTTPError) and error.code not in (408, 429, 500, 502, 503, 504):
                raise UserError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from None
            last_error = error
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
    else:
        raise UserError(
            f"downloading {url} failed after {attempts} attempts ({last_error})",
            "Check the connection and run the same command again: the download resumes where it stopped.",
        )
    actual = _sha256_of(partial)
    if actual != sha256:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}",
            "The file was deleted; check the URL and its #sha256= value.",
        )
    os.replace(partial, final)
    return final


def _download_range(url: str, partial: Path, timeout_s: float) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # we already have every byte
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the Range: start over
            have = 0
        total = response.headers.get("Content-Length")
        total_bytes = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        with (
            open(partial, mode) as handle,
            tqdm(
                total=total_bytes,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=f"download {Path(partial).stem[:12]}",
            ) as progress,
        ):
            while True:
                chunk = response.read(_CHUNK_BYTES)
                if not chunk:
                    break
                handle.write(chunk)
                progress.update(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        if total_bytes is not None and partial.stat().st_size < total_bytes:
            raise ConnectionError(f"connection closed after {partial.stat().st_size} of {total_bytes} bytes")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(archive: Path, destination: Path) -> None:
    """Unpack a tar or zip archive, refusing links and paths that leave ``destination``."""
    try:
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    target = (destination / member).resolve()
                    if not target.is_relative_to(destination.resolve()):
                        raise UserError(f"archive {archive.name} has an unsafe path: {member}")
                zipped.extractall(destination)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(destination, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        raise UserError(
            f"the downloaded archive could not be unpacked: {str(error).splitlines()[0]}"
        ) from None


def _package_root(directory: Path) -> Path:
    """The folder of an unpacked archive that holds the package or bundle (the archive's top
    level, or its one top-level folder)."""
    if (
        all((directory / name).is_file() for name in REQUIRED_PACKAGE_FILES)
        or (directory / BUNDLE_FILE).is_file()
    ):
        return directory
    children = [child for child in directory.iterdir() if child.is_dir()]
    if len(children) == 1:
        return children[0]
    return directory
