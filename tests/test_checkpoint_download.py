"""Checkpoint sources against a real HTTP server on 127.0.0.1: caching, resuming, verifying."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from pathlib import Path

import pytest

from src.common.errors import UserError
from src.play.fetch import check_package, resolve_checkpoint


def make_package_archive() -> bytes:
    """A tar.gz holding one folder with the files of a (fake-weights) package."""
    buffer = io.BytesIO()
    files = {
        "config.json": json.dumps({"_class_name": "VelodreamDiT"}).encode(),
        "model.safetensors": bytes(range(256)) * 512,  # content only needs to survive the trip
        "conditions.json": b"{}",
        "README.md": b"# test package\n",
    }
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ArchiveServer:
    """Serves one archive; can drop the first connection after a number of bytes."""

    def __init__(self, payload: bytes, *, drop_first_after: int | None = None):
        self.payload = payload
        self.drop_first_after = drop_first_after
        self.requests: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append(range_header)
                start = 0
                if range_header:
                    start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
                body = server.payload[start:]
                self.send_response(206 if range_header else 200)
                self.send_header("Content-Length", str(len(body)))
                if range_header:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}"
                    )
                self.end_headers()
                if server.drop_first_after is not None and len(server.requests) == 1:
                    self.wfile.write(body[: server.drop_first_after])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-body
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/model.tar.gz"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_caches_and_second_resolve_makes_no_request(tmp_path):
    payload = make_package_archive()
    digest = hashlib.sha256(payload).hexdigest()
    server = ArchiveServer(payload)
    with server as url:
        package = resolve_checkpoint(f"{url}#sha256={digest}", cache_dir=tmp_path)
        assert check_package(package) == package
        assert (package / "model.safetensors").read_bytes() == bytes(range(256)) * 512
        again = resolve_checkpoint(f"{url}#sha256={digest}", cache_dir=tmp_path)
    assert again == package and len(server.requests) == 1
    assert not list((tmp_path / "downloads").glob("*"))  # the archive is not kept after unpacking


def test_download_resumes_after_a_dropped_connection(tmp_path):
    payload = make_package_archive()
    digest = hashlib.sha256(payload).hexdigest()
    server = ArchiveServer(payload, drop_first_after=len(payload) // 3)
    with server as url:
        package = resolve_checkpoint(f"{url}#sha256={digest}", cache_dir=tmp_path)
    assert check_package(package)
    assert server.requests[0] is None
    assert server.requests[1] == f"bytes={len(payload) // 3}-"  # continued, not restarted


def test_hash_mismatch_is_rejected_and_leaves_nothing(tmp_path):
    payload = make_package_archive()
    with ArchiveServer(payload) as url, pytest.raises(UserError, match="checksum mismatch"):
        resolve_checkpoint(f"{url}#sha256={'0' * 64}", cache_dir=tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_clear_messages_for_bad_sources(tmp_path):
    with pytest.raises(UserError, match="no #sha256"):
        resolve_checkpoint("https://example.invalid/model.tar.gz", cache_dir=tmp_path)
    with pytest.raises(UserError, match="not found"):
        resolve_checkpoint(str(tmp_path / "missing"), cache_dir=tmp_path)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text("{}")
    with pytest.raises(UserError, match="missing model.safetensors, conditions.json"):
        resolve_checkpoint(str(incomplete), cache_dir=tmp_path)
    with pytest.raises(UserError, match="offline"):
        resolve_checkpoint(
            f"https://example.invalid/m.tar.gz#sha256={'a' * 64}", cache_dir=tmp_path, offline=True
        )
    with pytest.raises(UserError, match="offline"):
        resolve_checkpoint("hf://velodream/none", cache_dir=tmp_path, offline=True)


def test_unsafe_archive_paths_are_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    payload = buffer.getvalue()
    with ArchiveServer(payload) as url, pytest.raises(UserError):
        resolve_checkpoint(
            f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", cache_dir=tmp_path / "cache"
        )
    assert not (tmp_path / "evil.txt").exists() and not Path(tmp_path / "cache" / "evil.txt").exists()
