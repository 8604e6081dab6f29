"""Ride videos from URLs: yt-dlp downloads a real mp4 from a real HTTP server on 127.0.0.1 (no
outside network) into the cache, continues an interrupted download, then prepare_data prepares
it with the files beside it; a URL that fails is one line and the other videos go on."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from src.data.sources import find_embedded_file

ROOT = Path(__file__).resolve().parents[1]


class RangeHandler(SimpleHTTPRequestHandler):
    """A static file server that answers ``Range: bytes=N-`` with 206, as media hosts do, and
    records every GET it serves (path, first byte)."""

    requests: list[tuple[str, int]] = []

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        type(self).requests.append((self.path, start))
        self.send_response(206 if header else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])

    def do_HEAD(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a copy of the real bikes.mp4 street clip."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(find_embedded_file("bikes.mp4"), root / "ride.mp4")
    RangeHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.multiprocess
def test_a_url_downloads_once_and_an_interrupted_download_continues(server, tmp_path):
    from src.data.download import download_video, url_digest

    base, root = server
    url = f"{base}/ride.mp4"
    original = (root / "ride.mp4").read_bytes()
    # what an interrupted download leaves behind: the first 100 kB in the .part file
    folder = tmp_path / "cache" / url_digest(url)[:16]
    folder.mkdir(parents=True)
    (folder / "video.mp4.part").write_bytes(original[:100_000])
    path = download_video(url, cache_dir=tmp_path / "cache", progress=False)
    assert path.read_bytes() == original
    media = [start for request, start in RangeHandler.requests if request == "/ride.mp4"]
    assert media and media[-1] == 100_000, RangeHandler.requests  # it asked only for the rest
    served = len(RangeHandler.requests)
    assert download_video(url, cache_dir=tmp_path / "cache", progress=False) == path
    assert len(RangeHandler.requests) == served  # cached: no second request


@pytest.mark.multiprocess
def test_prepare_data_takes_urls_beside_files_and_a_failing_url_is_one_line(server, tmp_path):
    base, root = server
    url = f"{base}/ride.mp4"
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(find_embedded_file("bikes.mp4"), videos / "local.mp4")
    (videos / "more.urls").write_text(f"# a ride list\n{base}/missing.mp4\n")
    out = tmp_path / "prepared"
    env = dict(os.environ, PYTHONPATH=str(ROOT), VELODREAM_CACHE=str(tmp_path / "cache"), TQDM_DISABLE="1")
    command = [
        sys.executable, "-m", "src.scripts.prepare_data", "--videos", str(videos), url, "--out", str(out),
        "--resolution", "32x32", "--fps", "4", "--start_s", "1", "--end_s", "3",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["videos"] == 2
    by_url = {record.get("url"): record for record in manifest["videos"]}
    record = by_url[url]
    assert Path(record["source"]).is_relative_to(tmp_path / "cache")
    assert record["num_frames"] == by_url[None]["num_frames"] == 8  # 2 s at 4 fps, trimmed as a file is
    failed = [line for line in done.stderr.splitlines() if "missing.mp4" in line]
    assert len(failed) == 1  # when it happens; the summary counts it
    assert done.stdout.strip().endswith("; skipped 1 (see above)")
    assert all(f"skipped {base}/missing.mp4: download failed: " in line for line in failed)
    assert "Traceback" not in done.stderr
    assert [item["source"] for item in manifest["skipped"]] == [f"{base}/missing.mp4"]
