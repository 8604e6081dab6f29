"""Writing and reading videos and images (PyAV and OpenCV; no ffmpeg command line).

Used by every part that shows results: game recordings, validation grids, visualisers.
Writes go to a temporary file first and are renamed into place when complete.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from src.common.io import atomic_write_bytes, check_writable_file, disk_error

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")


class Mp4Writer:
    """H.264 (yuv420p) video of uint8 ``h w 3`` frames; odd sizes are padded by one edge pixel.

    The file is written under a temporary name and renamed on ``close``.
    """

    def __init__(self, path: str | Path, *, fps: float, width: int, height: int, crf: int = 20):
        import av

        self.path = check_writable_file(path, what="video", suffixes=VIDEO_SUFFIXES)
        self.width, self.height = width, height
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
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
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as error:  # a full disk: remove the partial file and say which folder
            self.abort()
            raise disk_error(error, self.path.parent) from None
        self.num_frames += 1

    def close(self) -> Path:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except OSError as error:
            self.abort()
            raise disk_error(error, self.path.parent) from None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._container.close()
        except OSError:
            pass  # closing flushes, which fails again on a full disk; the file goes anyway
        finally:
            self._tmp.unlink(missing_ok=True)


def write_mp4(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], *, fps: float) -> Path:
    """Write uint8 RGB frames as an H.264 mp4: a ``t h w 3`` array, or any iterable of ``h w 3``
    frames (streamed: the size comes from the first; an interrupted write leaves no file)."""
    if isinstance(frames, np.ndarray):
        height, width = frames.shape[1:3]
    else:
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            raise ValueError(f"no frames to write to {path}")
        height, width = first.shape[:2]
        frames = itertools.chain([first], frames)
    writer = Mp4Writer(path, fps=fps, width=width, height=height)
    try:
        for frame in frames:
            writer.write(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def read_video_frames(path: str | Path) -> np.ndarray:
    """Decode every frame of a video as ``t h w 3`` uint8 RGB."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``h w 3`` uint8 RGB image as PNG, atomically."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")

    atomic_write_bytes(path, encoded.tobytes())
    return Path(path)
