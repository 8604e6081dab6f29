"""Decoded frames held on disk beside a video's shards, so preparing a video never holds it whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class FrameSpool:
    """Equal-sized uint8 frames appended to a raw file and read back by index range (copies, not a
    memory map, so pages read do not stay in the process's memory). The file is an unnamed temporary
    file in ``folder`` (on the dataset's disk, not in a RAM-backed /tmp): it has no name to leave
    behind, and its space is freed when it is closed or the process ends, even when killed."""

    def __init__(self, folder: Path):
        self.shape: tuple[int, ...] | None = None
        self.count = 0
        self.file = tempfile.TemporaryFile(dir=folder, prefix=".frames-", suffix=".u8.tmp")  # noqa: SIM115

    def __enter__(self) -> FrameSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def __len__(self) -> int:
        return self.count

    def append(self, frame: np.ndarray) -> None:
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} differs from the first frame's {self.shape}")
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.count += 1

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as a ``t h w c`` uint8 array."""
        assert self.shape is not None and 0 <= start < stop <= self.count
        frame_bytes = int(np.prod(self.shape))
        self.file.flush()
        self.file.seek(start * frame_bytes)
        frames = np.empty((stop - start, *self.shape), np.uint8)
        if self.file.readinto(memoryview(frames).cast("B")) != frames.nbytes:
            raise OSError(f"the temporary frame file is shorter than the {self.count} frames written to it")
        return frames
