"""Ride videos from URLs: ``prepare_data --videos URL`` downloads them with yt-dlp, then prepares them.

A source is a video file, a folder (searched recursively for videos and for ``*.urls`` lists), a
list file (``.txt`` or ``.urls``: one file, folder or URL a line; ``#`` starts a comment) or an
``http(s)://`` URL. yt-dlp handles direct media links with its generic extractor and the sites it
knows by theirs. Each URL downloads once into its own cache folder
(``$VELODREAM_CACHE/videos/<hash of the URL>/``, default ``~/.cache/velodream``); an interrupted
download leaves a ``.part`` file that the next run continues (an HTTP range request where the
server allows it), and a finished one is marked by ``done.json`` and never fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from src.common.errors import UserError
from src.common.io import atomic_write_json
from src.data.decode import VIDEO_SUFFIXES

LIST_SUFFIXES = (".txt", ".urls")
# a ride needs no sound: a video-only stream up to 1080p needs no merging (and so no ffmpeg);
# a direct link has one combined format, the fallback
VIDEO_FORMAT = "bv[height<=1080]/bv/b"


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def video_cache_dir() -> Path:
    return Path(os.environ.get("VELODREAM_CACHE", Path.home() / ".cache" / "velodream")) / "videos"


def url_digest(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


def url_video_id(url: str) -> str:
    """A prepared-dataset id for a URL: the last part of its path and a hash of the whole URL."""
    stem = Path(unquote(urlparse(url).path)).stem or urlparse(url).netloc
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40]
    return f"{stem}-{url_digest(url)[:8]}"


def _read_list(path: Path) -> list[str]:
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # relative paths in a list are relative to the list file
        entries.append(line if is_url(line) or Path(line).is_absolute() else str(path.parent / line))
    return entries


def expand_video_sources(items: list[str | Path]) -> list[str | Path]:
    """Video files (``Path``) and URLs (``str``) named by ``items``, in order, without repeats."""
    found: list[str | Path] = []

    def add(item: str | Path, depth: int) -> None:
        if depth > 8:
            raise UserError(
                f"list files nest too deep at {item}", "A list file may name other lists, not itself."
            )
        if is_url(item):
            found.append(str(item))
            return
        path = Path(item)
        if path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            lists = sorted(p for p in path.rglob("*.urls") if p.is_file())
            if not videos and not lists:
                raise UserError(
                    f"no videos found in {path}",
                    f"Video files end in {', '.join(VIDEO_SUFFIXES)}; lists of URLs end in .urls.",
                )
            found.extend(videos)
            for listing in lists:
                for entry in _read_list(listing):
                    add(entry, depth + 1)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for entry in _read_list(path):
                add(entry, depth + 1)
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(
                f"no such file or folder: {path}", "Pass video files, folders, lists or URLs with --videos."
            )

    for item in items:
        add(item, 0)
    if not found:
        raise UserError(
            f"no videos found in {', '.join(str(p) for p in items)}", "Pass video files, folders or URLs."
        )
    unique: dict[str, str | Path] = {}
    for source in found:
        unique.setdefault(str(source) if is_url(source) else str(Path(source).resolve()), source)
    return list(unique.values())


def cached_video(url: str, *, cache_dir: Path | None = None) -> Path | None:
    """The complete download of ``url`` in the cache, or None."""
    folder = (cache_dir or video_cache_dir()) / url_digest(url)[:16]
    done_file = folder / "done.json"
    if done_file.is_file():
        try:
            done = json.loads(done_file.read_text())
            name = done["file"]
            if not isinstance(name, str) or Path(name).name != name:
                raise ValueError(f"'file' is {name!r}, not a file name")
        except (ValueError, KeyError, TypeError, OSError) as error:
            # a damaged record (written by download_video) is not a download: fetch it again
            print(
                f"the download record {done_file} is damaged ({error}): downloading {url} again", flush=True
            )
            return None
        if (folder / name).is_file():
            return folder / name
    return None


def download_video(url: str, *, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """The local copy of the video at ``url``: downloaded with yt-dlp on first use (continuing an
    interrupted download), then taken from the cache. A failure is a one-line ``UserError``."""
    import yt_dlp

    cached = cached_video(url, cache_dir=cache_dir)
    if cached is not None:
        return cached
    folder = (cache_dir or video_cache_dir()) / url_digest(url)[:16]
    done_file = folder / "done.json"
    folder.mkdir(parents=True, exist_ok=True)
    options = {
        "outtmpl": str(folder / "video.%(ext)s"),
        "format": VIDEO_FORMAT,
        "continuedl": True,  # go on from video.<ext>.part
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": not progress,
        "retries": 3,
        "fragment_retries": 3,
        "socket_timeout": 30,
        "logger": _QuietLogger(),
    }
    try:
        with yt_dlp.YoutubeDL(options) as downloader:
            info = downloader.extract_info(url, download=True)
            files = [d["filepath"] for d in info.get("requested_downloads") or [] if d.get("filepath")]
    except yt_dlp.utils.DownloadError as error:
        raise UserError(
            f"download failed: {_first_line(error)}", "Check the URL, or download it yourself."
        ) from None
    if not files or not Path(files[0]).is_file():
        raise UserError("download failed: yt-dlp wrote no file", "Check the URL, or download it yourself.")
    path = Path(files[0])
    atomic_write_json(done_file, {"url": url, "file": path.name, "title": info.get("title")})
    return path


def _first_line(error: Exception) -> str:
    text = str(error).replace("ERROR: ", "").strip()
    return text.splitlines()[0] if text else type(error).__name__


class _QuietLogger:
    """yt-dlp's messages: errors are raised (and reported once by the caller), the rest dropped."""

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass


def download_once(url: str, state) -> Path:
    """``download_video(url)`` when every process needs the file: the main process downloads it,
    the others then take its cached copy (two processes never write one download)."""
    error = None
    if state.is_main_process:
        try:
            download_video(url)
        except UserError as failed:
            error = failed
    state.wait_for_everyone()
    if error is not None:
        raise error
    local = cached_video(url)
    if local is None:
        raise UserError(f"download failed: {url} (see the main process's message)")
    return local
