"""Writing what the game shows: H.264 mp4 through PyAV, and checks that an output path is usable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from src.common.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")


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
        raise UserError(f"cannot write {what} to {path}: {error.strerror or error}",
                        "Choose a path in a writable folder.") from None
    return path


def check_writable_dir(path: str | Path, *, what: str) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} path {path} exists and is not a folder")
    check_writable_file(path.parent / f".{path.name}.probe", what=what)
    return path


class Mp4Writer:
    """H.264 (yuv420p) video of uint8 ``h w 3`` frames; odd sizes are padded by one edge pixel.

    The file is written under a temporary name and renamed on ``close``.
    """

    def __init__(self, path: str | Path, *, fps: int, width: int, height: int, crf: int = 20):
        import av

        self.path = check_writable_file(path, what="video", suffixes=VIDEO_SUFFIXES)
        self.width, self.height = width, height
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=int(fps))
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.num_frames = 0

    def write(self, rgb: np.ndarray) -> None:  # h w 3 uint8
        import av

        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {rgb.shape[:2]}, the video is {(self.height, self.width)}")
        if self.width % 2 or self.height % 2:
            rgb = np.pad(rgb, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)
