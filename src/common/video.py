"""Writing and reading videos and images (PyAV and OpenCV; no ffmpeg command line).

Used by every part that shows results: game recordings, validation grids, visualisers.
Writes go to a temporary file first and are renamed into place when complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.common.errors import UserError
from src.common.io import atomic_path


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sides: pad the last row/column by repetition."""
    t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


class Mp4Writer:
    """Streams RGB uint8 frames (``h w 3``) into an H.264 mp4, atomically.

    Use as a context manager; the file appears at ``path`` only when the writer closes
    without an error.
    """

    def __init__(self, path: str | Path, *, fps: float, crf: int = 20):
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self._atomic = None
        self._container = None
        self._stream = None
        self.frames_written = 0

    def __enter__(self) -> Mp4Writer:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
        except OSError as error:
            raise UserError(
                f"cannot write {self.path}: {error.strerror}", "Choose a writable output path."
            ) from None
        import av

        self._container = av.open(str(tmp), mode="w", format="mp4")
        return self

    def write(self, frame: np.ndarray) -> None:
        from fractions import Fraction

        import av

        frame = _even(np.ascontiguousarray(frame, dtype=np.uint8)[None])[0]
        if self._stream is None:
            rate = Fraction(self.fps).limit_denominator(1000)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._stream is not None and exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)


def write_mp4(path: str | Path, frames: np.ndarray, *, fps: float) -> Path:
    """Write ``t h w 3`` uint8 RGB frames as an H.264 mp4."""
    with Mp4Writer(path, fps=fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


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
    from src.common.io import atomic_write_bytes

    atomic_write_bytes(path, encoded.tobytes())
    return Path(path)
